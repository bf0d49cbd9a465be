#ifndef DISTILL_CPNG_SHIM_H
#define DISTILL_CPNG_SHIM_H
#include <png.h>
#endif
