# xcnn_warn_if_unoptimized(): a configure-time warning for a project that uses xcnn in a build
# without optimisation. Called by xcnnConfig.cmake (find_package) and by xcnn's CMakeLists.txt
# when another project vendors it (add_subdirectory, FetchContent).
#
# xcnn is header-only: its kernels are compiled with the consumer's flags. At -O0, which is what
# a single-config generator gives when CMAKE_BUILD_TYPE is empty (and what Debug gives), training
# runs about 600 times slower, and nothing else says why. Multi-config generators choose the
# configuration at build time, so there is nothing to check at configure time.
#
# Set XCNN_WARN_UNOPTIMIZED=OFF for a deliberate debug build, or when the optimisation flags come
# from somewhere this cannot see (a toolchain's target options, a compiler wrapper).
include_guard(GLOBAL)

function(xcnn_warn_if_unoptimized)
    if(DEFINED XCNN_WARN_UNOPTIMIZED AND NOT XCNN_WARN_UNOPTIMIZED)
        return()
    endif()
    get_property(_multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
    # Without C++ enabled yet, CMAKE_CXX_FLAGS says nothing about the flags the build will use.
    if(_multi_config OR NOT CMAKE_CXX_COMPILER_LOADED)
        return()
    endif()
    # find_package(xcnn) may run in several subprojects of one build: one warning is enough.
    get_property(_warned GLOBAL PROPERTY _XCNN_WARNED_UNOPTIMIZED)
    if(_warned)
        return()
    endif()

    set(_flags "${CMAKE_CXX_FLAGS}")
    set(_where "CMAKE_CXX_FLAGS")
    if(CMAKE_BUILD_TYPE)
        string(TOUPPER "${CMAKE_BUILD_TYPE}" _config)
        string(APPEND _flags " ${CMAKE_CXX_FLAGS_${_config}}")
        set(_where "CMAKE_CXX_FLAGS and CMAKE_CXX_FLAGS_${_config} (CMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE})")
    else()
        set(_where "CMAKE_CXX_FLAGS (CMAKE_BUILD_TYPE is empty)")
    endif()
    # The last optimisation level wins (GCC, Clang: -O, -O0..-O3, -Os, -Oz, -Og, -Ofast; MSVC:
    # /O1, /O2, /Ox, /Os, /Ot, /Od). None at all means -O0 (MSVC: /Od). /Ob2, /Oi, /Oy are not
    # levels and do not match.
    separate_arguments(_args NATIVE_COMMAND "${_flags}")
    set(_level "none")
    foreach(_arg IN LISTS _args)
        if(_arg MATCHES "^[-/]O([0-9]|s|z|g|x|t|d|fast)?$")
            set(_level "${CMAKE_MATCH_1}")
        endif()
    endforeach()
    if(_level STREQUAL "none")
        set(_why "there is no -O option in ${_where}, so the compiler does not optimise")
    elseif(_level STREQUAL "0" OR _level STREQUAL "d")
        set(_why "the last -O option in ${_where} turns optimisation off")
    else()
        return()
    endif()
    set_property(GLOBAL PROPERTY _XCNN_WARNED_UNOPTIMIZED TRUE)
    message(WARNING
        "xcnn: this build is not optimised: ${_why}. xcnn is header-only and its kernels are compiled "
        "with your flags; unoptimised, training and inference run about 600 times slower. Configure "
        "with -DCMAKE_BUILD_TYPE=Release (or RelWithDebInfo). Set XCNN_WARN_UNOPTIMIZED=OFF to silence "
        "this for a deliberate debug build.")
endfunction()
