# xcnn is header-only: nothing is compiled, the CMake install only lays out the headers and the
# package files. One configuration is enough.
set(VCPKG_BUILD_TYPE release)

# An overlay port of the checkout it lives in:
#     vcpkg install xcnn --overlay-ports=<xcnn checkout>/ports
# For a registry, replace this line with vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH
# REPO <owner>/xcnn REF "v${VERSION}" SHA512 <hash of the release archive> HEAD_REF main).
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# The same options as the install that tests/consumer/run.sh checks.
vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DXCNN_BUILD_TESTS=OFF
        -DXCNN_BUILD_EXAMPLES=OFF
        -DXCNN_BUILD_BENCHMARKS=OFF
        -DXCNN_INSTALL=ON
        -DXCNN_WITH_ZLIB=ON
)

vcpkg_cmake_install()

# xcnn installs its package files to share/cmake/xcnn; vcpkg wants them in share/xcnn.
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/xcnn)

# xcnn.pc says `Requires: xtensor xsimd`, but vcpkg's xtensor port ships no xtensor.pc (its
# portfile deletes lib/, where it puts it), so the file could not resolve: use CMake with vcpkg.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/share/pkgconfig")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
