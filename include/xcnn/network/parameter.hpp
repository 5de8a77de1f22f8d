/// @file
/// Kept for code that included it before the parameter handles moved to core/parameter.hpp.
#ifndef XCNN_NETWORK_PARAMETER_HPP
#define XCNN_NETWORK_PARAMETER_HPP

#include "../core/parameter.hpp"

#endif // XCNN_NETWORK_PARAMETER_HPP
