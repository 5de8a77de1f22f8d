/// @file
/// The one place where xcnn includes xtensor.
///
/// xtensor 0.26 moved its headers into sub-folders (`xtensor/containers/xtensor.hpp`, ...)
/// without forwarding headers, while Debian 12 ships 0.24 with the flat layout. Every other
/// xcnn header includes this file instead of xtensor directly, so supporting a new layout is a
/// change in one file.
#ifndef XCNN_CORE_XTENSOR_SHIM_HPP
#define XCNN_CORE_XTENSOR_SHIM_HPP

// GCC 12 reports false -W(maybe-)uninitialized warnings inside its own AVX-512 intrinsics (the
// `_mm512_undefined_*` placeholders they pass as merge sources) wherever xsimd's exp, erf or tanh
// are compiled for AVX-512. The warnings sit in these third-party headers' code, so they are
// silenced for the headers alone; xcnn's own code is still checked.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#if __has_include(<xtensor/containers/xtensor.hpp>)
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xarray.hpp>
#include <xtensor/containers/xtensor.hpp>
#include <xtensor/core/xmath.hpp>
#include <xtensor/core/xnoalias.hpp>
#include <xtensor/generators/xbuilder.hpp>
#include <xtensor/io/xio.hpp>
#include <xtensor/misc/xmanipulation.hpp>
#include <xtensor/reducers/xreducer.hpp>
#include <xtensor/views/xstrided_view.hpp>
#include <xtensor/views/xview.hpp>
#else
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xio.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>
#endif

#include <xsimd/xsimd.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif // XCNN_CORE_XTENSOR_SHIM_HPP
