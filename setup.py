"""What pyproject.toml cannot say: the cffi extension, the version from the C header, and the
abi3 wheel tag. Everything else lives in pyproject.toml."""

import os
import runpy
import sys
import sysconfig

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))

# The version's one source is EDGESER_VERSION_MAJOR/MINOR/PATCH in
# native/include/edgeser/frontend.h. edgeser/_version.py parses them; it is run by path
# (standard library only), so building never imports the package.
try:
    VERSION = runpy.run_path(os.path.join(HERE, "edgeser", "_version.py"))["header_version"]()
except (OSError, ValueError) as err:
    raise SystemExit(f"setup.py: cannot read the package version: {err}") from None

# One wheel for CPython 3.10+ (requires-python): native/build_ffi.py compiles the extension
# against the stable ABI, so the wheel is tagged cp310-abi3. Debug and free-threaded CPython
# have no stable ABI; there (the same test as build_ffi.py's) the wheel is version-specific.
LIMITED_API = not hasattr(sys, "gettotalrefcount") and not sysconfig.get_config_var(
    "Py_GIL_DISABLED")

setup(
    version=VERSION,
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if LIMITED_API else {},
)
