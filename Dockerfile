# One image for web, worker and beat.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 console
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir "uv==0.13.9" \
    && uv pip install --system --no-config --require-hashes --compile-bytecode -r requirements.lock
COPY . .
# The console runs as a user who cannot write __pycache__ here: compile now,
# or every process compiles the code from source as it starts.
RUN python -m compileall -q console releases manage.py
ENV CONSOLE_MODE=production PYTHONUNBUFFERED=1
RUN SECRET_KEY=build CONSOLE_TOKEN_KEYS=$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput
USER console
EXPOSE 8000
CMD ["gunicorn", "console.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
