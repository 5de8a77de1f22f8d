#ifndef XCNN_VERSION_HPP
#define XCNN_VERSION_HPP

/// @file version.hpp
/// @brief Compile-time version of the xcnn library.
///
/// `XCNN_VERSION_MAJOR`, `XCNN_VERSION_MINOR` and `XCNN_VERSION_PATCH` follow semantic
/// versioning. `XCNN_VERSION` packs them into one integer, `MAJOR * 10000 + MINOR * 100 + PATCH`
/// (0.1.0 -> 100), for use in `#if` comparisons. The top-level CMakeLists.txt reads the project
/// version from the three `#define` lines below, so keep their `#define NAME <number>` form.

/// Major version: changes when the API changes incompatibly.
#define XCNN_VERSION_MAJOR 0
/// Minor version: changes when features are added compatibly.
#define XCNN_VERSION_MINOR 1
/// Patch version: changes with compatible fixes.
#define XCNN_VERSION_PATCH 0

/// The version as one integer, `MAJOR * 10000 + MINOR * 100 + PATCH`, for `#if` comparisons.
#define XCNN_VERSION (XCNN_VERSION_MAJOR * 10000 + XCNN_VERSION_MINOR * 100 + XCNN_VERSION_PATCH)

#endif // XCNN_VERSION_HPP
