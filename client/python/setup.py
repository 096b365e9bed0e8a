"""Builds the package with gRPC stubs generated from the repository's proto/ at build time, so
the client always matches the server's API."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


class BuildWithStubs(build_py):
    def run(self):
        from grpc_tools import protoc  # a build requirement
        import grpc_tools

        out = os.path.join(HERE, "elliptical_client", "_generated")
        os.makedirs(out, exist_ok=True)
        sources = sorted(
            os.path.join(PROTO_ROOT, "elliptical", "v1", f)
            for f in os.listdir(os.path.join(PROTO_ROOT, "elliptical", "v1")) if f.endswith(".proto"))
        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        code = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}",
                            f"--grpc_python_out={out}", *sources])
        if code != 0:
            raise RuntimeError(f"protoc failed ({code}) on {PROTO_ROOT}")
        for d in (out, os.path.join(out, "elliptical"), os.path.join(out, "elliptical", "v1")):
            open(os.path.join(d, "__init__.py"), "a").close()
        super().run()


setup(cmdclass={"build_py": BuildWithStubs},
      package_data={"elliptical_client": ["_generated/**/*.py", "_generated/*.py", "py.typed"]})
