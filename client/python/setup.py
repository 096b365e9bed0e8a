"""Builds the package with gRPC stubs generated from the repository's proto/ at build time, so
the client always matches the server's API.

The stubs go to elliptical_client/_generated/elliptical/v1/ (ignored by git). protoc writes
their cross-imports as `from elliptical.v1 import ...`; they are rewritten to import from inside
this package, so installing it adds no top-level `elliptical` module.
"""
import os
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO_DIR = os.path.join(PROTO_ROOT, "elliptical", "v1")
OUT = os.path.join(HERE, "elliptical_client", "_generated")
PACKAGE = "elliptical_client._generated.elliptical.v1"


def generate_stubs() -> None:
    from grpc_tools import protoc  # a build requirement (pyproject.toml)
    import grpc_tools

    if not os.path.isdir(PROTO_DIR):
        if os.path.isdir(os.path.join(OUT, "elliptical", "v1")):
            return  # built from a copy without proto/ (an sdist) that carries its stubs
        raise RuntimeError(f"{PROTO_DIR} not found: build this package from the repository checkout "
                           "(pip install ./client/python), which has proto/ two levels up")
    shutil.rmtree(OUT, ignore_errors=True)  # no stubs of removed .proto files survive
    os.makedirs(OUT)
    sources = sorted(os.path.join(PROTO_DIR, f) for f in os.listdir(PROTO_DIR) if f.endswith(".proto"))
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")  # google/protobuf/*.proto
    code = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={OUT}",
                        f"--grpc_python_out={OUT}", *sources])
    if code != 0:
        raise RuntimeError(f"protoc failed (exit {code}) on {PROTO_DIR}")
    v1 = os.path.join(OUT, "elliptical", "v1")
    for d in (OUT, os.path.join(OUT, "elliptical"), v1):
        open(os.path.join(d, "__init__.py"), "a").close()
    for name in os.listdir(v1):
        path = os.path.join(v1, name)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r"^from elliptical\.v1 import ", f"from {PACKAGE} import ", text, flags=re.M))


class BuildWithStubs(build_py):
    def run(self):
        generate_stubs()
        # A reused build/ directory would otherwise keep stubs of removed .proto files.
        shutil.rmtree(os.path.join(self.build_lib, "elliptical_client", "_generated"), ignore_errors=True)
        super().run()


setup(cmdclass={"build_py": BuildWithStubs},
      package_data={"elliptical_client": ["_generated/*.py", "_generated/elliptical/*.py",
                                            "_generated/elliptical/v1/*.py", "py.typed"]})
