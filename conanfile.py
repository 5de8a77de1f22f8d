"""Conan 2 recipe for xcnn, header-only convolutional neural networks on xtensor.

From a checkout:

    conan create . --build=missing

builds nothing (xcnn is header-only), runs the same CMake install that tests/consumer/run.sh checks
and then test_package/, which trains one step of a small network through find_package(xcnn).
"""

import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load, rmdir

required_conan_version = ">=2.0"


class XcnnConan(ConanFile):
    name = "xcnn"
    description = "Header-only convolutional neural networks on xtensor"
    license = "BSD-3-Clause"
    topics = ("deep-learning", "neural-networks", "cnn", "xtensor", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    # What the package is made from: the build script and the headers (tests, examples and
    # benchmarks are not needed). tests/consumer/run.sh builds its FetchContent archive from
    # exactly these.
    exports_sources = "CMakeLists.txt", "cmake/*", "include/*", "LICENSE"
    no_copy_source = True

    # The CMake options of the package build; the vcpkg port passes the same.
    _cmake_options = {
        "XCNN_BUILD_TESTS": False,
        "XCNN_BUILD_EXAMPLES": False,
        "XCNN_BUILD_BENCHMARKS": False,
        "XCNN_INSTALL": True,
        "XCNN_WITH_ZLIB": True,
    }

    def set_version(self):
        # One source of truth for the version: include/xcnn/version.hpp, as for CMake.
        header = load(self, os.path.join(self.recipe_folder, "include", "xcnn", "version.hpp"))
        parts = []
        for part in ("MAJOR", "MINOR", "PATCH"):
            match = re.search(r"^#define\s+XCNN_VERSION_%s\s+(\d+)\s*$" % part, header, re.MULTILINE)
            if match is None:
                raise ValueError("include/xcnn/version.hpp defines no XCNN_VERSION_%s" % part)
            parts.append(match.group(1))
        self.version = ".".join(parts)

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        # Headers of a header-only library reach its consumers: both are transitive. xtensor 0.24
        # and 0.25 use the flat header layout, 0.26 and later the sub-folder one; xcnn's
        # include shim handles both. xcnn calls xsimd itself, so it requires it directly.
        self.requires("xtensor/[>=0.24.0 <0.28]", transitive_headers=True)
        self.requires("xsimd/[>=8.0.0 <14]", transitive_headers=True)
        # .gz data sets (io/gzip.hpp): the headers call zlib, so consumers link it.
        self.requires("zlib/[>=1.2.11 <2]", transitive_headers=True, transitive_libs=True)

    def package_id(self):
        # Header-only: one package serves every setting.
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 17)

    def generate(self):
        toolchain = CMakeToolchain(self)
        for option, value in self._cmake_options.items():
            toolchain.cache_variables[option] = value
        toolchain.generate()
        CMakeDeps(self).generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.install()
        # Conan writes the consumers' CMake and pkg-config files itself, from package_info().
        rmdir(self, os.path.join(self.package_folder, "share"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "xcnn")
        self.cpp_info.set_property("cmake_target_name", "xcnn::xcnn")
        self.cpp_info.set_property("pkg_config_name", "xcnn")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # What the CMake package's xcnn::xcnn carries besides C++17 (which the profile's
        # compiler.cppstd sets under conan): xsimd-accelerated xtensor, zlib and the thread
        # library. The requirements (xtensor, xsimd, zlib) are linked through CMakeDeps.
        self.cpp_info.defines = ["XTENSOR_USE_XSIMD", "XCNN_HAS_ZLIB=1"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
