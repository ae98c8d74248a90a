"""Builds clipserve._clipserve with the repository's CMake (the parent directory of this
one), for the interpreter running pip, and puts it into the wheel. See docs/python.md."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if not (REPO / "CMakeLists.txt").exists():
            raise RuntimeError(f"{REPO}/CMakeLists.txt not found: build from a clipserve checkout")
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = [
            "cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython3_EXECUTABLE={sys.executable}", "-DCLIPSERVE_BENCH=OFF",
            "-DCLIPSERVE_PYTHON=ON",
        ]
        if shutil.which("ninja"):
            cfg += ["-G", "Ninja"]
        subprocess.run(cfg, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "_clipserve", "-j", jobs],
                       check=True)
        built = next((build_dir / "python" / "clipserve").glob("_clipserve*.so"))
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dest)


setup(ext_modules=[CMakeExtension("clipserve._clipserve")], cmdclass={"build_ext": CMakeBuild})
