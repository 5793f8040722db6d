/* mlf_runtime_unit.c: the runtime's large entry points (mlf_entries.h) defined once,
 * with hidden external linkage, for the c backend's parallel build to link into every
 * model it compiles (aot/build/compiler.py caches its object per runtime and flags). */
#define MLF_RUNTIME_UNIT
#include "mlf_runtime.h"
#include "mlf_gemm.h"
#include "mlf_gemm_bf16.h"
#include "mlf_gemm_i8.h"
#include "mlf_gemm_s8.h"
#include "mlf_conv_s8.h"
#include "mlf_kernels.h"
