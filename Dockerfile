# One image for web, worker and beat, without the development tools.
FROM python:3.11-slim-bookworm
# bubblewrap and util-linux (setpriv, prlimit): the sandbox that package code runs in.
RUN apt-get update && apt-get install -y --no-install-recommends git bubblewrap util-linux && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 console
WORKDIR /app
# The runtime lock: the pins of requirements.lock without the dev extras (make lock).
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir "uv==0.13.9" \
    && uv pip install --system --no-config --index-url https://pypi.org/simple/ --require-hashes --compile-bytecode \
        -r requirements-runtime.lock
COPY . .
# The console runs as a user who cannot write __pycache__ here: compile now,
# or every process compiles the code from source as it starts.
RUN python -m compileall -q console releases manage.py
ENV CONSOLE_MODE=production PYTHONUNBUFFERED=1
RUN SECRET_KEY=build CONSOLE_TOKEN_KEYS=$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
    AUDIT_CHAIN_KEYS=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \
    AUDIT_CHECKPOINT_SIGNING_KEY=$(python -c 'import base64; from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as K; print(base64.b64encode(K.generate().private_bytes_raw()).decode())') \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput
# Audit checkpoints are appended here (a volume); the console's user must own it.
RUN mkdir -p /var/lib/release-console/audit-checkpoints && chown console /var/lib/release-console/audit-checkpoints
USER console
EXPOSE 8000
CMD ["gunicorn", "console.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
