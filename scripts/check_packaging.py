#!/usr/bin/env python3
"""Offline checks of xcnn's vcpkg port, vcpkg manifest and conan recipe.

Neither vcpkg nor conan can run without the internet, so this checks what can be checked without
them:

- the manifests are valid JSON with the fields vcpkg needs, and the port's version is the one in
  include/xcnn/version.hpp;
- the portfile calls the vcpkg CMake helpers a header-only port needs, with exactly the CMake
  options of the install that tests/consumer/run.sh exercises, and fixes up the directory the
  install really uses;
- conanfile.py and test_package/conanfile.py are valid Python; the recipe is *run* against stand-ins
  for the conan API: set_version() must read the headers' version, requirements() must require
  xtensor and xsimd, package_id() must clear the settings, generate() must pass the same CMake
  options, package_info() must export xcnn::xcnn; the files it exports must exist and be what
  run.sh's FetchContent archive holds.

    python3 scripts/check_packaging.py      # exits non-zero on any failure
"""

import ast
import json
import os
import re
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

results = []


def check(name, condition, detail=""):
    results.append((name, bool(condition)))
    print("%s  %s%s" % ("ok  " if condition else "FAIL", name, "" if condition or not detail else ": " + detail))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def header_version():
    text = read("include/xcnn/version.hpp")
    parts = [re.search(r"^#define\s+XCNN_VERSION_%s\s+(\d+)" % p, text, re.M).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def consumer_package_options():
    """The -D options of the install in tests/consumer/run.sh, as {name: bool}."""
    text = read("tests/consumer/run.sh")
    match = re.search(r"^package_options=\((.*?)\)", text, re.M | re.S)
    options = {}
    for item in match.group(1).split():
        name, value = item[2:].split("=", 1)
        options[name] = value.upper() in ("ON", "TRUE", "1", "YES")
    return options


def cmake_config_install_dir():
    """Where CMakeLists.txt installs xcnnConfig.cmake (with GNUInstallDirs' default DATADIR)."""
    text = read("CMakeLists.txt")
    match = re.search(r'set\(XCNN_CMAKECONFIG_INSTALL_DIR\s+"([^"]+)"', text)
    return match.group(1).replace("${CMAKE_INSTALL_DATADIR}", "share")


VERSION = header_version()
OPTIONS = consumer_package_options()
print("xcnn %s; package CMake options %s" % (VERSION, OPTIONS))

# --- vcpkg ----------------------------------------------------------------------------------------


def load_json(path):
    try:
        return json.loads(read(path))
    except (OSError, ValueError) as e:
        check("%s is valid JSON" % path, False, str(e))
        return None


def dependency_names(manifest):
    return {d if isinstance(d, str) else d["name"] for d in manifest.get("dependencies", [])}


def dependency(manifest, name):
    for d in manifest.get("dependencies", []):
        if (d if isinstance(d, str) else d["name"]) == name:
            return {"name": d} if isinstance(d, str) else d
    return None


VCPKG_KEYS = {"$schema", "name", "version", "version-semver", "version-date", "version-string", "port-version",
              "description", "homepage", "license", "dependencies", "features", "default-features", "supports",
              "builtin-baseline", "overrides", "maintainers", "documentation", "vcpkg-configuration"}

top = load_json("vcpkg.json")
if top is not None:
    check("vcpkg.json is valid JSON", True)
    check("vcpkg.json has only manifest fields", set(top) <= VCPKG_KEYS, str(set(top) - VCPKG_KEYS))
    check("vcpkg.json pulls xtensor, xsimd, zlib and catch2", {"xtensor", "xsimd", "zlib", "catch2"} <= dependency_names(top),
          str(dependency_names(top)))
    xt = dependency(top, "xtensor") or {}
    check("vcpkg.json asks for xtensor's xsimd feature", "xsimd" in xt.get("features", []))

port = load_json("ports/xcnn/vcpkg.json")
if port is not None:
    check("ports/xcnn/vcpkg.json is valid JSON", True)
    check("port manifest has only manifest fields", set(port) <= VCPKG_KEYS, str(set(port) - VCPKG_KEYS))
    check("port is named xcnn", port.get("name") == "xcnn")
    check("port version is include/xcnn/version.hpp's (%s)" % VERSION, port.get("version") == VERSION,
          str(port.get("version")))
    check("port has a description and the BSD-3-Clause license",
          bool(port.get("description")) and port.get("license") == "BSD-3-Clause")
    for helper in ("vcpkg-cmake", "vcpkg-cmake-config"):
        d = dependency(port, helper)
        check("port depends on %s as a host tool" % helper, d is not None and d.get("host") is True)
    check("port depends on xtensor, xsimd and zlib", {"xtensor", "xsimd", "zlib"} <= dependency_names(port))
    check("port asks for xtensor's xsimd feature", "xsimd" in (dependency(port, "xtensor") or {}).get("features", []))

portfile = read("ports/xcnn/portfile.cmake")
for call in ("vcpkg_cmake_configure", "vcpkg_cmake_install", "vcpkg_cmake_config_fixup", "vcpkg_install_copyright"):
    check("portfile calls %s" % call, re.search(r"^\s*%s\(" % call, portfile, re.M))
check("portfile builds one configuration (header-only)", re.search(r"set\(VCPKG_BUILD_TYPE release\)", portfile))
configure = re.search(r"vcpkg_cmake_configure\((.*?)\n\)", portfile, re.S)
port_options = dict(re.findall(r"-D(\w+)=(\w+)", configure.group(1))) if configure else {}
port_options = {k: v.upper() in ("ON", "TRUE", "1", "YES") for k, v in port_options.items()}
check("portfile passes the consumer tests' CMake options", port_options == OPTIONS, "%s != %s" % (port_options, OPTIONS))
fixup = re.search(r"vcpkg_cmake_config_fixup\(CONFIG_PATH\s+(\S+)\)", portfile)
check("portfile fixes up the directory CMakeLists.txt installs to (%s)" % cmake_config_install_dir(),
      fixup is not None and fixup.group(1) == cmake_config_install_dir(), fixup.group(1) if fixup else "no CONFIG_PATH")
usage = read("ports/xcnn/usage")
check("port usage shows find_package and xcnn::xcnn",
      "find_package(xcnn CONFIG REQUIRED)" in usage and "xcnn::xcnn" in usage)

# --- conan ----------------------------------------------------------------------------------------


def parses(path):
    try:
        ast.parse(read(path), filename=path)
        return True
    except SyntaxError as e:
        check("%s is valid Python" % path, False, str(e))
        return False


class Recorder:
    """Stands in for conan's objects: records attribute writes and method calls."""

    def __init__(self, name="recorder"):
        self._name = name
        self.calls = []
        self.properties = {}
        self.cache_variables = {}

    def set_property(self, key, value):
        self.properties[key] = value

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def call(*args, **kwargs):
            self.calls.append((attr, args, kwargs))

        return call


def conan_stubs():
    """Minimal stand-ins for the modules conanfile.py imports."""
    conan = types.ModuleType("conan")

    class ConanFile:
        def __init__(self):
            self.recipe_folder = ROOT
            self.requirements_seen = []
            self.info = Recorder("info")
            self.cpp_info = Recorder("cpp_info")
            self.settings = types.SimpleNamespace(os="Linux")

        def requires(self, ref, **kwargs):
            self.requirements_seen.append((ref, kwargs))

    conan.ConanFile = ConanFile
    tools = types.ModuleType("conan.tools")
    build = types.ModuleType("conan.tools.build")
    build.check_min_cppstd = lambda conanfile, cppstd: conanfile.__dict__.setdefault("min_cppstd", cppstd)
    build.can_run = lambda conanfile: True
    cmake = types.ModuleType("conan.tools.cmake")
    toolchains = []

    class CMakeToolchain(Recorder):
        def __init__(self, conanfile):
            super().__init__("CMakeToolchain")
            toolchains.append(self)

    cmake.CMakeToolchain = CMakeToolchain
    cmake.CMakeDeps = lambda conanfile: Recorder("CMakeDeps")
    cmake.CMake = lambda conanfile: Recorder("CMake")
    cmake.cmake_layout = lambda conanfile, **kwargs: None
    files = types.ModuleType("conan.tools.files")

    def load(conanfile, path, **kwargs):
        with open(path, encoding="utf-8") as f:
            return f.read()

    files.load = load
    files.copy = lambda *args, **kwargs: None
    files.rmdir = lambda *args, **kwargs: None
    modules = {"conan": conan, "conan.tools": tools, "conan.tools.build": build, "conan.tools.cmake": cmake,
               "conan.tools.files": files}
    return modules, toolchains


def load_recipe(path, modules):
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        namespace = {"__file__": os.path.join(ROOT, path), "__name__": "conanfile"}
        exec(compile(read(path), path, "exec"), namespace)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    classes = [v for v in namespace.values()
               if isinstance(v, type) and issubclass(v, modules["conan"].ConanFile) and v is not modules["conan"].ConanFile]
    return namespace, classes


if parses("conanfile.py"):
    check("conanfile.py is valid Python", True)
    modules, toolchains = conan_stubs()
    namespace, classes = load_recipe("conanfile.py", modules)
    check("conanfile.py defines one ConanFile", len(classes) == 1)
    check("conanfile.py requires conan 2", str(namespace.get("required_conan_version", "")).startswith(">=2"))
    recipe_class = classes[0]
    recipe = recipe_class()
    check("recipe is named xcnn", getattr(recipe_class, "name", None) == "xcnn")
    check("recipe is a header-library", getattr(recipe_class, "package_type", None) == "header-library")
    check("recipe has license, description, settings",
          recipe_class.license == "BSD-3-Clause" and recipe_class.description and recipe_class.settings)
    for method in ("set_version", "layout", "requirements", "package_id", "validate", "generate", "build", "package",
                   "package_info"):
        check("recipe defines %s()" % method, callable(getattr(recipe_class, method, None)))

    recipe.set_version()
    check("set_version() reads %s from include/xcnn/version.hpp" % VERSION, getattr(recipe, "version", None) == VERSION,
          str(getattr(recipe, "version", None)))
    recipe.requirements()
    required = {ref.split("/")[0]: (ref, kw) for ref, kw in recipe.requirements_seen}
    check("recipe requires xtensor, xsimd and zlib", {"xtensor", "xsimd", "zlib"} <= set(required),
          str(recipe.requirements_seen))
    check("xtensor, xsimd and zlib headers are transitive",
          all(required.get(n, ("", {}))[1].get("transitive_headers") for n in ("xtensor", "xsimd", "zlib")))
    xtensor_range = required.get("xtensor", ("",))[0]
    check("recipe's xtensor range admits 0.24 (Debian 12) and 0.27", re.search(r"\[>=0\.24[\d.]* <0\.2[89]", xtensor_range),
          xtensor_range)
    recipe.package_id()
    check("package_id() clears the settings (header-only)", ("clear", (), {}) in recipe.info.calls)
    recipe.validate()
    check("validate() requires C++17", recipe.__dict__.get("min_cppstd") in (17, "17"))
    recipe.generate()
    conan_options = toolchains[-1].cache_variables if toolchains else {}
    check("generate() passes the consumer tests' CMake options", conan_options == OPTIONS,
          "%s != %s" % (conan_options, OPTIONS))
    recipe.package_info()
    props = recipe.cpp_info.properties
    check("package_info() exports xcnn::xcnn from package xcnn",
          props.get("cmake_target_name") == "xcnn::xcnn" and props.get("cmake_file_name") == "xcnn")
    check("package_info() names the pkg-config module xcnn", props.get("pkg_config_name") == "xcnn")
    defines = getattr(recipe.cpp_info, "defines", [])
    check("package_info() defines XTENSOR_USE_XSIMD and XCNN_HAS_ZLIB=1",
          "XTENSOR_USE_XSIMD" in defines and "XCNN_HAS_ZLIB=1" in defines, str(defines))
    check("package_info() declares no libraries (header-only)",
          recipe.cpp_info.__dict__.get("libdirs") == [] and recipe.cpp_info.__dict__.get("bindirs") == [])
    exported = list(recipe_class.exports_sources)
    check("recipe exports CMakeLists.txt, cmake/, include/, LICENSE",
          sorted(exported) == sorted(["CMakeLists.txt", "cmake/*", "include/*", "LICENSE"]), str(exported))
    run_sh = read("tests/consumer/run.sh")
    check("run.sh's FetchContent archive holds what the recipe exports",
          "cp -R CMakeLists.txt cmake include LICENSE" in run_sh)
    for item in exported:
        check("exported %s exists" % item, os.path.exists(os.path.join(ROOT, item.rstrip("/*"))))

if parses("test_package/conanfile.py"):
    check("test_package/conanfile.py is valid Python", True)
    modules, _ = conan_stubs()
    _, classes = load_recipe("test_package/conanfile.py", modules)
    check("test_package defines one ConanFile", len(classes) == 1)
    tp = classes[0]
    check("test_package requires the tested reference", "tested_reference_str" in read("test_package/conanfile.py"))
    check("test_package defines build() and test()", callable(getattr(tp, "build", None)) and callable(getattr(tp, "test", None)))
    cml = read("test_package/CMakeLists.txt")
    check("test_package uses find_package(xcnn CONFIG REQUIRED) and xcnn::xcnn",
          "find_package(xcnn CONFIG REQUIRED)" in cml and "xcnn::xcnn" in cml)
    check("test_package/test_package.cpp exists", os.path.exists(os.path.join(ROOT, "test_package/test_package.cpp")))

failed = sum(1 for _, ok in results if not ok)
print()
print("packaging: %d passed, %d failed" % (len(results) - failed, failed))
sys.exit(1 if failed else 0)
