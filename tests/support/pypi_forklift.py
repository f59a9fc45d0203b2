"""The legacy upload API's rules, as warehouse enforces them, in its order.

Each refusal carries warehouse's status code and message; every check names
the place in pypi/warehouse it follows (``warehouse/forklift/legacy.py``
``file_upload`` unless said otherwise). Not enforced here: YARA scanning, ZIP
record framing, RECORD and entry-point validation, e-mail address and URL
syntax, 2FA and verified e-mail of the uploader, rate limits, organisations,
attestations.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from io import BytesIO
from typing import Any, cast

import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt
from packaging.metadata import (
    _LIST_FIELDS,
    _RAW_TO_EMAIL_MAPPING,
    _STRING_FIELDS,
    InvalidMetadata,
    Metadata,
    RawMetadata,
    _parse_keywords,
    _parse_project_urls,
)
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from trove_classifiers import all_classifiers, deprecated_classifiers

from tests.support.pypi_state import PypiState, StoredFile, StoredProject, StoredRelease, Token

# warehouse/forklift/legacy.py
MAXIMUM_AGE_FOR_NEW_UPLOADS_DAYS = 14
# warehouse/forklift/metadata.py
SUPPORTED_METADATA_VERSIONS = {"1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5"}
DYNAMIC_FIELDS = {
    f.lower()
    for f in [
        "Platform",
        "Supported-Platform",
        "Summary",
        "Description",
        "Description-Content-Type",
        "Keywords",
        "Home-Page",
        "Download-Url",
        "Author",
        "Author-Email",
        "Maintainer",
        "Maintainer-Email",
        "License",
        "License-Expression",
        "License-File",
        "Classifier",
        "Requires-Dist",
        "Requires-Python",
        "Requires-External",
        "Project-Url",
        "Provides-Extra",
        "Provides-Dist",
        "Obsoletes-Dist",
        "Requires",
        "Provides",
        "Obsoletes",
        "Import-Name",
        "Import-Namespace",
    ]
}
# warehouse/utils/project.py
PROJECT_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII)
CORE_METADATA_URL = "https://packaging.python.org/specifications/core-metadata"
LOCAL_VERSION_URL = (
    "https://packaging.python.org/en/latest/specifications/version-specifiers/#local-version-identifiers"
)
DOCS = "https://docs.pypi.org"
ERROR_ORDER = ["metadata-version", "name", "version"]
FILETYPE_EXTENSIONS = {"sdist": {".zip", ".tar.gz"}, "bdist_wheel": {".whl"}}
DIST_FILE_RE = re.compile(r".+?(?P<extension>\.(tar\.gz|zip|whl))$", re.IGNORECASE)


class Refusal(Exception):
    """An HTTP error with warehouse's status and message (``_exc_with_message``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


Form = dict[str, list[str]]


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class _Pending:
    """What a successful upload adds; nothing is kept when a check refuses
    (warehouse's transaction is rolled back)."""

    project: StoredProject
    release: StoredRelease
    new_project: bool
    new_release: bool
    files: list[StoredFile] = field(default_factory=list)


def token_from_authorization(header: str) -> str | None:
    """The macaroon in ``Basic base64(__token__:<token>)`` or ``token <token>``
    (warehouse/macaroons/security_policy.py ``_extract_http_macaroon``)."""
    method, _, value = header.partition(" ")
    if method.lower() in ("token", "bearer"):
        return value.strip()
    if method.lower() != "basic":
        return None
    try:
        user, _, token = base64.b64decode(value).decode().partition(":")
    except (ValueError, binascii.Error):
        return None
    return token.strip() if user == "__token__" else None


def help_url(state: PypiState, anchor: str) -> str:
    return f"{state.site}/help/#{anchor}"


def file_upload(state: PypiState, token: Token | None, form: Form, content: Upload | None) -> str:
    """Accept one file or raise Refusal; returns the body of the 200 answer."""
    form = _sanitize(form)
    # forklift/decorators.py ensure_uploads_allowed: no identity, 403.
    if token is None:
        raise Refusal(
            403,
            "Invalid or non-existent authentication information. "
            f"See {help_url(state, 'invalid-auth')} for more information.",
        )
    if _one(form, "protocol_version", "1") != "1":
        raise Refusal(400, "Unknown protocol version.")
    _validate_form(form)
    meta = _parse_metadata(form)
    if content is None:
        raise Refusal(400, "Upload payload does not have a file.")
    pending = _project_and_release(state, token, form, meta)
    _check_description(state, meta)
    filetype = _one(form, "filetype")
    _validate_filename(content.filename, filetype)
    # Invalid content type: twine sends application/octet-stream.
    if not content.content_type or content.content_type.startswith("image/"):
        raise Refusal(400, "Invalid distribution file.")
    _check_sizes(state, pending.project, meta, content.data)
    hashes = {
        "md5": hashlib.md5(content.data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(content.data).hexdigest(),
        "blake2_256": hashlib.blake2b(content.data, digest_size=32).hexdigest(),
    }
    for name, value in hashes.items():
        given = _one(form, f"{name}_digest")
        if given and not hmac.compare_digest(given.lower(), value):
            raise Refusal(400, "The digest supplied does not match a digest calculated from the uploaded file.")
    if _is_duplicate(state, content.filename, hashes):
        return ""  # the same bytes again: 200, nothing stored (request.tm.doom())
    _check_file_is_new(state, pending, content.filename, filetype, hashes)
    core_metadata = _check_distribution(state, pending, meta, content, filetype)
    _store(state, pending, meta, content, filetype, _one(form, "pyversion", "source"), core_metadata)
    return ""


def _sanitize(form: Form) -> Form:
    """forklift/decorators.py ``sanitize``: distutils' "UNKNOWN" means absent."""
    return {k: [v for v in values if v.strip() != "UNKNOWN"] for k, values in form.items()}


def _one(form: Form, name: str, default: str = "") -> str:
    values = form.get(name) or []
    return values[0] if values else default


def _validate_form(form: Form) -> None:
    """forklift/forms.py ``UploadForm`` and the message file_upload makes of
    its first error."""
    errors: dict[str, str] = {}
    name = _one(form, "name")
    if not name:
        errors["name"] = "This field is required."
    elif not PROJECT_NAME_RE.match(name):
        errors["name"] = "Start and end with a letter or numeral containing only ASCII numeric and '.', '_' and '-'."
    filetype = _one(form, "filetype")
    if not filetype:
        errors["filetype"] = "This field is required."
    elif filetype not in FILETYPE_EXTENSIONS:
        errors["filetype"] = "Use a known file type."
    for digest, label in (("sha256_digest", "SHA256"), ("blake2_256_digest", "BLAKE2")):
        value = _one(form, digest)
        if value and not re.fullmatch(r"[A-Fa-f0-9]{64}", value):
            errors[digest] = f"Use a valid, hex-encoded, {label} message digest."
    if errors:
        field_name = next((f for f in ERROR_ORDER if f in errors), sorted(errors)[0])
        if field_name == "name":
            value = name[:30] + "..." + name[-30:] if len(name) > 60 else name
            raise Refusal(
                400,
                f"{value!r} is an invalid value for Name. Error: {errors['name']} "
                f"See {CORE_METADATA_URL} for more information.",
            )
        raise Refusal(400, f"Invalid value for {field_name}. Error: {errors[field_name]}")
    pyversion = _one(form, "pyversion")
    if filetype != "sdist" and not pyversion:
        raise Refusal(
            400, "Invalid value for pyversion. Error: Python version is required for binary distribution uploads."
        )
    if filetype == "sdist" and pyversion not in ("", "source"):
        raise Refusal(400, "Invalid value for pyversion. Error: Use 'source' as Python version for an sdist.")
    if not any(_one(form, d) for d in ("md5_digest", "sha256_digest", "blake2_256_digest")):
        raise Refusal(400, "Error: Include at least one message digest.")


def _parse_metadata(form: Form) -> Metadata:
    """forklift/metadata.py ``parse_form_metadata`` and ``_validate_metadata``,
    reported as file_upload reports the first error."""
    overrides = {
        "platforms": "platform",
        "supported_platforms": "supported_platform",
        "license_files": "license_file",
        "import_names": "import_name",
        "import_namespaces": "import_namespace",
    }
    form_to_raw = {overrides.get(k, k): k for k in _RAW_TO_EMAIL_MAPPING}
    raw: dict[str, Any] = {}
    for key, values in form.items():
        raw_name = form_to_raw.get(key)
        if raw_name is None or values == [""] or not values:
            continue
        if raw_name in _STRING_FIELDS and len(values) == 1:
            raw[raw_name] = values[0]
        elif raw_name in _LIST_FIELDS:
            raw[raw_name] = values
        elif raw_name == "keywords" and len(values) == 1:
            raw[raw_name] = _parse_keywords(values[0])
        elif raw_name == "project_urls":
            raw[raw_name] = _parse_project_urls(values)
        else:
            _refuse_metadata([InvalidMetadata(key, f"{key!r} has invalid data")])
    try:
        meta = Metadata.from_raw(cast(RawMetadata, raw))
    except ExceptionGroup as group:
        _refuse_metadata([e for e in group.exceptions if isinstance(e, InvalidMetadata)])
    _refuse_metadata(warehouse_metadata_errors(meta))
    return meta


def warehouse_metadata_errors(meta: Metadata) -> list[InvalidMetadata]:
    """The checks warehouse adds to packaging's (metadata.py ``_validate_metadata``)."""
    errors = []
    if meta.metadata_version not in SUPPORTED_METADATA_VERSIONS:
        errors.append(InvalidMetadata("metadata-version", f"{meta.metadata_version!r} is not a valid metadata version"))
    if meta.version.local:
        errors.append(InvalidMetadata("version", f"The use of local versions in '{meta.version}' is not allowed."))
    if meta.summary is not None and len(meta.summary) > 512:
        errors.append(InvalidMetadata("summary", "'summary' field must be 512 characters or less."))
    classifiers = set(meta.classifiers or [])
    errors.extend(
        InvalidMetadata("classifier", f"{c!r} is not a valid classifier.")
        for c in sorted(classifiers - set(all_classifiers))
    )
    for classifier in sorted(classifiers & deprecated_classifiers.keys()):
        instead = deprecated_classifiers[classifier]
        message = f"The classifier {classifier!r} has been deprecated"
        errors.append(
            InvalidMetadata("classifier", f"{message}, use one of {instead} instead." if instead else f"{message}.")
        )
    for requirement in meta.requires_dist or []:
        if requirement.url is not None:
            errors.append(InvalidMetadata("requires-dist", f"Can't have direct dependency: {requirement}"))
    for key in meta.dynamic or []:
        if key not in DYNAMIC_FIELDS:
            errors.append(InvalidMetadata("dynamic", f"Dynamic field {key!r} is not a valid dynamic field."))
    if meta.license and meta.license_expression:
        errors.append(
            InvalidMetadata(
                "license",
                "License is deprecated when License-Expression is present. Only License-Expression should be present.",
            )
        )
    return errors


def _refuse_metadata(errors: list[InvalidMetadata]) -> None:
    if not errors:
        return
    by_field: dict[str, list[InvalidMetadata]] = {}
    for error in errors:
        by_field.setdefault(error.field, []).append(error)
    field_name = next((f for f in ERROR_ORDER if f in by_field), sorted(by_field)[0])
    message = str(by_field[field_name][0])
    local = field_name == "version" and any("use of local versions" in str(e) for e in by_field["version"])
    see = LOCAL_VERSION_URL if local else CORE_METADATA_URL
    raise Refusal(400, f"{message}{'' if message.endswith('.') else '.'} See {see} for more information.")


def ultranormalize_name(name: str) -> str:
    """warehouse's SQL ``ultranormalize_name`` (migration d18d443f89f0)."""
    stripped = re.sub(r"[._-]", "", name)
    return re.sub(r"[oO]", "0", re.sub(r"[lLiI]", "1", stripped)).lower()


def _project_and_release(state: PypiState, token: Token, form: Form, meta: Metadata) -> _Pending:
    name = _one(form, "name")
    project = state.projects.get(canonicalize_name(name))
    new_project = project is None
    if project is None:
        _check_new_project_name(state, name)
        project = StoredProject(name=name, owners=[token.user])
    # Permission: a project-scoped token first (macaroons/caveats), then the role.
    if token.projects is not None and project.normalized_name not in token.projects:
        raise Refusal(403, f"Invalid API Token: project-scoped token is not valid for project: {project.name!r}")
    if not project.can_upload(token.user):
        raise Refusal(
            403,
            f"The user '{token.user}' isn't allowed to upload to project '{project.name}'. "
            f"See {help_url(state, 'project-name')} for more information.",
        )
    release = project.releases.get(canonicalize_version(meta.version))
    new_release = release is None
    if release is None:
        release = StoredRelease(str(meta.version), created=state.now())
    return _Pending(project, release, new_project, new_release)


def _check_new_project_name(state: PypiState, name: str) -> None:
    """packaging/services.py ``create_project`` / ``check_project_name``."""
    projecthelp = help_url(state, "project-name")
    # warehouse's list is every stdlib module of every Python it knows (stdlib-list);
    # this interpreter's own names stand in for it.
    if canonicalize_name(name) in {canonicalize_name(m.strip("-_.")) for m in sys.stdlib_module_names}:
        raise Refusal(
            400,
            f"The name {name!r} isn't allowed (conflict with Python Standard Library module name). "
            f"See {projecthelp} for more information.",
        )
    if canonicalize_name(name) in state.prohibited_names:
        raise Refusal(400, f"The name {name!r} isn't allowed. See {projecthelp} for more information.")
    if any(ultranormalize_name(p.name) == ultranormalize_name(name) for p in state.projects.values()):
        raise Refusal(
            400, f"The name {name!r} is too similar to an existing project. See {projecthelp} for more information."
        )


def _check_description(state: PypiState, meta: Metadata) -> None:
    """Render as warehouse/utils/readme.py ``render(..., use_fallback=False)``."""
    if not meta.description:
        return
    declared = meta.description_content_type or "text/x-rst"
    message = EmailMessage()
    message["content-type"] = declared
    renderers: dict[str, Any] = {
        "text/plain": readme_renderer.txt,
        "text/x-rst": readme_renderer.rst,
        "text/markdown": readme_renderer.markdown,
    }
    if renderers.get(message.get_content_type(), readme_renderer.txt).render(meta.description) is not None:
        return
    if meta.description_content_type:
        reason = f"The description failed to render for '{declared}'."
    else:
        reason = "The description failed to render in the default format of reStructuredText."
    raise Refusal(400, f"{reason} See {help_url(state, 'description-content-type')} for more information.")


def _validate_filename(filename: str, filetype: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        raise Refusal(
            400,
            "Cannot upload a file with non-printable characters (ordinals 0-31) "
            "or the DEL character (ordinal 127) in the name.",
        )
    if "/" in filename or "\\" in filename:
        raise Refusal(400, "Cannot upload a file with '/' or '\\' in the name.")
    match = DIST_FILE_RE.match(filename)
    if match is None:
        raise Refusal(
            400,
            "Invalid file extension: Use .tar.gz, .whl or .zip extension. See https://www.python.org/dev/peps/pep-0527 "
            "and https://peps.python.org/pep-0715/ for more information",
        )
    if match.group("extension") not in FILETYPE_EXTENSIONS[filetype]:
        raise Refusal(
            400,
            f"Invalid file extension: Extension {match.group('extension')} is invalid for filetype {filetype}. "
            "See https://www.python.org/dev/peps/pep-0527 for more information.",
        )


def _check_sizes(state: PypiState, project: StoredProject, meta: Metadata, data: bytes) -> None:
    """The limits as the file streams in, 8096 bytes at a time."""
    file_limit = max(state.max_file_size, project.upload_limit or 0)
    project_limit = max(state.max_project_size, project.total_size_limit or 0)
    for size in [*range(8096, len(data), 8096), len(data)]:
        if size > file_limit:
            raise Refusal(
                400,
                f"File too large. Limit for project {meta.name!r} is {file_limit // (1024 * 1024)} MB. See "
                f"{DOCS}/project-management/storage-limits#requesting-a-file-size-limit-increase for more information.",
            )
        if size + project.total_size > project_limit:
            raise Refusal(
                400,
                f"Project size too large. Limit for project {meta.name!r} total size is "
                f"{project_limit // (1024 * 1024 * 1024)} GB. See "
                f"{DOCS}/project-management/storage-limits#requesting-a-project-size-limit-increase",
            )


def _is_duplicate(state: PypiState, filename: str, hashes: dict[str, str]) -> bool:
    """``_is_duplicate_file``: a file of that name, or of those bytes, anywhere
    on the index. Same name and bytes: a duplicate (True); otherwise refused."""
    for project in state.projects.values():
        for release in project.releases.values():
            for stored in release.files:
                if stored.filename == filename or stored.blake2_256 == hashes["blake2_256"]:
                    if stored.filename == filename and stored.sha256 == hashes["sha256"]:
                        return True
                    raise Refusal(
                        400,
                        f"File already exists ({filename!r}, with blake2_256 hash {hashes['blake2_256']!r}). "
                        f"See {help_url(state, 'file-name-reuse')} for more information.",
                    )
    return False


def _check_file_is_new(
    state: PypiState, pending: _Pending, filename: str, filetype: str, hashes: dict[str, str]
) -> None:
    if filename in state.deleted_filenames:
        raise Refusal(
            400,
            "This filename was previously used by a file that has since been deleted. Use a different version. "
            f"See {help_url(state, 'file-name-reuse')} for more information.",
        )
    oldest_allowed = state.now() - timedelta(days=MAXIMUM_AGE_FOR_NEW_UPLOADS_DAYS)
    if pending.release.created < oldest_allowed:
        raise Refusal(
            400, f"Uploading new files to releases older than {MAXIMUM_AGE_FOR_NEW_UPLOADS_DAYS} days is not allowed."
        )
    if filetype == "sdist" and any(f.packagetype == "sdist" for f in pending.release.files):
        raise Refusal(400, "Only one sdist may be uploaded per release.")


def _check_distribution(
    state: PypiState, pending: _Pending, meta: Metadata, content: Upload, filetype: str
) -> bytes | None:
    """The archive, its filename against the metadata, the platform tags;
    returns a wheel's METADATA (served as core metadata)."""
    problem = dist_file_problem(content.filename, content.data)
    if problem is not None:
        raise Refusal(400, f"Invalid distribution file. {problem}")
    filename = content.filename
    project_name = meta.name
    normalized = pending.project.normalized_name
    if filetype == "sdist":
        try:
            name_from_filename, _ = parse_sdist_filename(filename)
        except InvalidSdistFilename:
            raise Refusal(400, f"Invalid source distribution filename: {filename}") from None
        if canonicalize_name(name_from_filename) != normalized:
            raise Refusal(400, f"Start filename for {project_name!r} with {normalized.replace('-', '_')!r}.")
        expected = f"{normalized.replace('-', '_')}-{meta.version}.tar.gz"
        if filename != expected:
            raise Refusal(400, f"Filename {filename!r} is invalid, should be {expected!r}.")
        with tarfile.open(fileobj=BytesIO(content.data), mode="r:gz") as tar:
            top = os.path.commonpath(tar.getnames())
            names = set(tar.getnames())
        for license_file in meta.license_files or []:
            target = os.path.join(top, license_file)
            if target not in names:
                raise Refusal(
                    400, f"License-File {license_file} does not exist in distribution file {filename} at {target}"
                )
        return None
    try:
        name, version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise Refusal(400, str(exc)) from None
    for tag in tags:
        if not valid_platform_tag(tag.platform):
            raise Refusal(400, f"Binary wheel '{filename}' has an unsupported platform tag '{tag.platform}'.")
    if canonicalize_name(meta.name) != name:
        raise Refusal(
            400, f"Start filename for {project_name!r} with {canonicalize_name(meta.name).replace('-', '_')!r}."
        )
    name_from_filename = filename.split("-", 1)[0]
    if name_from_filename != normalized.replace("-", "_"):
        raise Refusal(
            400,
            f"Filename {filename!r} should contain the normalized project name {normalized.replace('-', '_')!r}, "
            f"not {name_from_filename!r}.",
        )
    if meta.version != version:
        raise Refusal(400, f"Version in filename should be {str(meta.version)!r} not {str(version)!r}.")
    dist_name, dist_version, _ = filename.split("-", 2)
    with zipfile.ZipFile(BytesIO(content.data)) as archive:
        members = set(archive.namelist())
        for license_file in meta.license_files or []:
            target = f"{dist_name}-{dist_version}.dist-info/licenses/{license_file}"
            if target not in members:
                raise Refusal(
                    400, f"License-File {license_file} does not exist in distribution file {filename} at {target}"
                )
        metadata_name = f"{dist_name}-{dist_version}.dist-info/METADATA"
        if metadata_name not in members:
            raise Refusal(400, f"Wheel '{filename}' does not contain the required METADATA file: {metadata_name}")
        return archive.read(metadata_name)


def dist_file_problem(filename: str, data: bytes) -> str | None:
    """``_is_valid_dist_file`` without the YARA scan and ZIP framing checks."""
    is_zip = zipfile.is_zipfile(BytesIO(data))
    try:
        with tarfile.open(fileobj=BytesIO(data), mode="r:*"):
            is_tar = True
    except (tarfile.TarError, EOFError, OSError):
        is_tar = False
    if is_zip and is_tar:
        return "File is both a zip and a tar file"
    if filename.endswith((".zip", ".whl")):
        if not is_zip:
            return "File is not a zipfile"
        with zipfile.ZipFile(BytesIO(data)) as archive:
            if any(i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) for i in archive.infolist()):
                return "File does not use a supported compression type"
            names = archive.namelist()
            if filename.endswith(".zip"):
                top = os.path.commonpath(names) if names else ""
                if top in (".", "/", ""):
                    return "Incorrect number of top-level directories in sdist"
                if os.path.join(top, "PKG-INFO") not in names:
                    return f"PKG-INFO not found at {os.path.join(top, 'PKG-INFO')}"
            else:
                parts = filename.split("-", 2)
                if len(parts) < 3:
                    return "Unable to parse name and version from wheel filename"
                target = f"{parts[0]}-{parts[1]}.dist-info/WHEEL"
                if target not in names:
                    return f"WHEEL not found at {target}"
        return None
    if not is_tar:
        return "File is not a tarfile"
    with tarfile.open(fileobj=BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        top = os.path.commonpath(names) if names else ""
        if top in (".", "/", ""):
            return "Incorrect number of top-level directories in sdist"
        if os.path.join(top, "PKG-INFO") not in names:
            return f"PKG-INFO not found at {os.path.join(top, 'PKG-INFO')}"
    return None


# Wheel platform tags (``_valid_platform_tag`` and the sets above it).
_ALLOWED_PLATFORMS = {
    "any", "win32", "win_arm64", "win_amd64", "win_ia64",
    "manylinux1_x86_64", "manylinux1_i686", "manylinux2010_x86_64", "manylinux2010_i686",
    "manylinux2014_x86_64", "manylinux2014_i686", "manylinux2014_aarch64", "manylinux2014_armv7l",
    "manylinux2014_ppc64", "manylinux2014_ppc64le", "manylinux2014_s390x",
    "linux_armv6l", "linux_armv7l",
}  # fmt: skip
_MACOSX_RE = re.compile(r"macosx_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>.*)")
_MACOSX_ARCHES = {"ppc", "ppc64", "i386", "x86_64", "arm64", "intel", "fat", "fat3", "fat64", "universal", "universal2"}
_MACOSX_MAJORS = {"11", "12", "13", "14", "15", "26"}
_IOS_RE = re.compile(r"ios_(\d+)_(\d+)_(?P<arch>.*)_(iphoneos|iphonesimulator)")
_ANDROID_RE = re.compile(r"android_(\d+)_(?P<arch>.*)")
_LINUX_RE = re.compile(r"(?P<libc>(many|musl))linux_(\d+)_(\d+)_(?P<arch>.*)")
_JOINT_LINUX_ARCHES = {"x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"}
_PYEMSCRIPTEN_RE = re.compile(r"pyemscripten_(?P<major>\d+)_(?P<minor>\d+)_wasm32")


def valid_platform_tag(platform: str) -> bool:
    if platform in _ALLOWED_PLATFORMS:
        return True
    if m := _MACOSX_RE.match(platform):
        arch_ok = m.group("arch") in _MACOSX_ARCHES
        if arch_ok and (m.group("major") == "10" or (m.group("major") in _MACOSX_MAJORS and m.group("minor") == "0")):
            return True
    if m := _LINUX_RE.match(platform):
        arches = _JOINT_LINUX_ARCHES if m.group("libc") == "musl" else _JOINT_LINUX_ARCHES | {"ppc64"}
        return m.group("arch") in arches
    if (m := _IOS_RE.match(platform)) and m.group("arch") in {"arm64", "x86_64"}:
        return True
    if (m := _ANDROID_RE.match(platform)) and m.group("arch") in {"armeabi_v7a", "arm64_v8a", "x86", "x86_64"}:
        return True
    return bool(_PYEMSCRIPTEN_RE.match(platform))


def _store(
    state: PypiState,
    pending: _Pending,
    meta: Metadata,
    content: Upload,
    filetype: str,
    pyversion: str,
    core_metadata: bytes | None,
) -> None:
    project, release = pending.project, pending.release
    project.name = meta.name
    if pending.new_release:
        release.requires_python = str(meta.requires_python) if meta.requires_python else None
        release.summary = meta.summary
        project.releases[canonicalize_version(meta.version)] = release
    release.files.append(
        StoredFile(content.filename, content.data, filetype, pyversion, state.now(), core_metadata=core_metadata)
    )
    if pending.new_project:
        state.projects[project.normalized_name] = project
