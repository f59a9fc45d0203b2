"""The wheel platform tags PyPI accepts (warehouse's ``_valid_platform_tag``
in ``forklift/legacy.py``), and what to do about one it refuses.

Linux is the trap: a wheel built on a developer's machine or a plain CI
runner is tagged ``linux_x86_64``, which promises nothing about the glibc it
needs; PyPI takes only the manylinux (PEP 600) and musllinux (PEP 656)
tags, which ``auditwheel repair`` gives after checking the wheel's libraries.
"""

from __future__ import annotations

import re

_LISTED = {
    "any", "win32", "win_arm64", "win_amd64", "win_ia64",
    "manylinux1_x86_64", "manylinux1_i686", "manylinux2010_x86_64", "manylinux2010_i686",
    "manylinux2014_x86_64", "manylinux2014_i686", "manylinux2014_aarch64", "manylinux2014_armv7l",
    "manylinux2014_ppc64", "manylinux2014_ppc64le", "manylinux2014_s390x",
    "linux_armv6l", "linux_armv7l",
}  # fmt: skip
_MACOSX = re.compile(r"macosx_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>.*)")
_MACOSX_ARCHES = {"ppc", "ppc64", "i386", "x86_64", "arm64", "intel", "fat", "fat3", "fat64", "universal", "universal2"}
_MACOSX_MAJORS = {"11", "12", "13", "14", "15", "26"}  # 10 takes any minor; later ones only _0
_LINUX = re.compile(r"(?P<libc>many|musl)linux_(\d+)_(\d+)_(?P<arch>.*)")
_LINUX_ARCHES = {"x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"}
_IOS = re.compile(r"ios_(\d+)_(\d+)_(?P<arch>.*)_(iphoneos|iphonesimulator)")
_ANDROID = re.compile(r"android_(\d+)_(?P<arch>.*)")
_PYEMSCRIPTEN = re.compile(r"pyemscripten_(\d+)_(\d+)_wasm32")
TAGS_SPEC = "https://packaging.python.org/en/latest/specifications/platform-compatibility-tags/"


def accepted(platform: str) -> bool:
    """Whether PyPI takes a wheel with this platform tag."""
    if platform in _LISTED:
        return True
    if (m := _MACOSX.match(platform)) and m.group("arch") in _MACOSX_ARCHES:
        major, minor = m.group("major"), m.group("minor")
        return major == "10" or (major in _MACOSX_MAJORS and minor == "0")
    if m := _LINUX.match(platform):
        return m.group("arch") in (_LINUX_ARCHES | {"ppc64"} if m.group("libc") == "many" else _LINUX_ARCHES)
    if (m := _IOS.match(platform)) and m.group("arch") in {"arm64", "x86_64"}:
        return True
    if (m := _ANDROID.match(platform)) and m.group("arch") in {"armeabi_v7a", "arm64_v8a", "x86", "x86_64"}:
        return True
    return bool(_PYEMSCRIPTEN.match(platform))


def advice(platform: str) -> str:
    """One sentence on what to do about a refused tag."""
    if platform.startswith("linux_"):
        return "repair the wheel with auditwheel (auditwheel repair) or build manylinux wheels on CI (cibuildwheel)."
    if platform.startswith("macosx_"):
        return (
            "build for a macOS version PyPI knows (10.x, or 11.0 and later with minor 0) with MACOSX_DEPLOYMENT_TARGET."
        )
    return f"build the wheel for a platform PyPI accepts ({TAGS_SPEC})."
