"""Shared, cached artifacts for the aotc tests: trained checkpoints, exports and a
C driver program generated for an export's header.

Artifacts are built once per test session and shared between pytest-xdist
workers (tests/session_artifacts.py).
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import session_artifacts
from session_artifacts import cached

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def shared_root(tmp_path_factory) -> Path:
    return session_artifacts.shared_root(tmp_path_factory, "aotc-shared")


def train_checkpoint(example: str, path: Path, epochs: int) -> None:
    sys.path.insert(0, str(EXAMPLES))
    module = __import__(example)
    module.run("xla", epochs=epochs, checkpoint_dir=path, progress=False)


def checkpoint(root: Path, example: str) -> Path:
    epochs = {"digits_mlp": 2, "digits_cnn": 1}[example]
    return cached(root, f"ckpt-{example}", lambda p: train_checkpoint(example, p, epochs))


def export(root: Path, key: str, fn, inputs, **kw) -> Path:
    """An export folder built once per session (`key` names it)."""
    from aot.export import export_model
    name = kw.pop("name", key.replace("-", "_"))
    return cached(root, f"export-{key}",
                  lambda p: export_model(fn, inputs, p, name=name, **kw))


# ---- counting allocator calls ----

# C that interposes malloc, calloc, realloc, memalign, aligned_alloc, posix_memalign and
# free and counts their calls in `calls` while `counting` is set; compiled out with
# -DNO_COUNTING (the sanitizers bring their own allocator).
COUNTING_ALLOCATOR = r"""
static volatile int counting;
static volatile long calls;
#ifndef NO_COUNTING
extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void __libc_free(void*);
void* malloc(size_t n) { if (counting) calls++; return __libc_malloc(n); }
void* calloc(size_t a, size_t b) { if (counting) calls++; return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { if (counting) calls++; return __libc_realloc(p, n); }
void* memalign(size_t a, size_t n) { if (counting) calls++; return __libc_memalign(a, n); }
void* aligned_alloc(size_t a, size_t n) { if (counting) calls++; return __libc_memalign(a, n); }
int posix_memalign(void** p, size_t a, size_t n) {
  if (counting) calls++;
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;
}
void free(void* p) { if (counting && p) calls++; __libc_free(p); }
#endif
"""


def symbolic_sanitized(name: str, symbols: Sequence[str],
                       sizes: Sequence[Sequence[int]]) -> str:
    """A C program for `run_sanitized`: `name`_run of a symbolic export with one input x
    and one output, over `symbols` (in the header's order), at each of `sizes` (one
    value per symbol) with a workspace of exactly NAME_ARENA_BYTES_FOR(...) bytes (ASan
    sees any access past it) and input and output of exactly their sizes. It checks
    first that a symbol of 0 or past its maximum returns NAME_ERR_SIZE, then prints one
    line per size: the values and the output's sum, for x[i] = ((i*7919) % 113)/57 - 1."""
    P = name.upper()
    at = ", ".join(f"v[{j}]" for j in range(len(symbols)))
    ones = ", ".join(["1"] * (len(symbols) - 1))
    rest = f"{ones}, " if ones else ""
    rows = ", ".join("{" + ", ".join(map(str, size)) + "}" for size in sizes)
    return f"""#include <stdio.h>
#include <stdlib.h>
#include "{name}.h"
int main(void) {{
  const int64_t sizes[][{len(symbols)}] = {{{rows}}};
  if ({name}_run(0, {rest}NULL, NULL, NULL) != {P}_ERR_SIZE) return 2;
  if ({name}_run({P}_MAX_{symbols[0]} + 1, {rest}NULL, NULL, NULL) != {P}_ERR_SIZE) return 2;
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {{
    const int64_t* v = sizes[k];
    float* x = malloc({P}_X_BYTES_FOR({at}));
    float* y = malloc({P}_OUTPUT_BYTES_FOR({at}));
    void* ws = aligned_alloc(64, {P}_ARENA_BYTES_FOR({at}));
    for (int64_t i = 0; i < {P}_X_SIZE_FOR({at}); i++)
      x[i] = (float)((i * 7919) % 113) / 57.0f - 1.0f;
    int status = {name}_run({at}, x, y, ws);
    if (status) {{ printf("%s\\n", {name}_strerror(status)); return 1; }}
    double sum = 0;
    for (int64_t i = 0; i < {P}_OUTPUT_SIZE_FOR({at}); i++) sum += y[i];
    for (int j = 0; j < {len(symbols)}; j++) printf("%lld ", (long long)v[j]);
    printf("%.6f\\n", sum);
    free(x); free(y); free(ws);
  }}
  return 0;
}}
"""


def run_sanitized(program: Path, folder: Path, sources: list[str], exe: Path,
                  flags: Sequence[str] = ()) -> str:
    """Builds the C file `program` with an export's `sources` (file names in `folder`)
    under ASan and UBSan, allocator counting compiled out (-DNO_COUNTING), and `flags`
    (-march=native for the host's vector paths), runs it and returns its stdout; fails
    unless it builds, exits 0 and the sanitizers stay quiet."""
    cmd = ["gcc", "-O1", "-std=gnu99", *flags, "-DNO_COUNTING", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-fno-math-errno", "-fwrapv",
           "-fno-strict-aliasing", f"-I{folder}", f"-I{folder / 'runtime'}", str(program),
           *(str(folder / f) for f in sources), "-lm", "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    env = {"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr
    return result.stdout


# ---- the C driver program ----

DRIVER = r"""
/* Test driver for {name}.h: reads the inputs from argv[1] (raw bytes, in order),
 * runs the model and writes the outputs to argv[2].
 * mode "run": once with a caller workspace; "static": NULL workspace;
 * "threads": two threads with their own workspaces, 50 runs each, results
 * compared with the first run; "malloc": counts allocator calls inside run
 * (built with -DCOUNT_MALLOC: malloc, calloc, realloc, memalign, posix_memalign,
 * aligned_alloc and free, whoever calls them: libgomp too), in the first run
 * after NAME_set_threads(0) and in the 10 runs after it, and with
 * -DCOUNT_REGIONS the OpenMP parallel regions those runs enter (GOMP_parallel),
 * those of one thread apart. */
#ifndef NO_THREADS
#include <pthread.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "{name}.h"

static volatile int counting = 0;
static volatile long allocations = 0;
/* per function: malloc, calloc, realloc, memalign, posix_memalign, aligned_alloc, free */
static volatile long calls[7];
static const char* const call_names[7] = {{"malloc", "calloc", "realloc", "memalign",
                                           "posix_memalign", "aligned_alloc", "free"}};
#define COUNT(k) do {{ if (counting) {{ allocations++; calls[k]++; }} }} while (0)
#ifdef COUNT_MALLOC
#include <errno.h>
extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void __libc_free(void*);
void* malloc(size_t n) {{ COUNT(0); return __libc_malloc(n); }}
void* calloc(size_t a, size_t b) {{ COUNT(1); return __libc_calloc(a, b); }}
void* realloc(void* p, size_t n) {{ COUNT(2); return __libc_realloc(p, n); }}
void* memalign(size_t a, size_t n) {{ COUNT(3); return __libc_memalign(a, n); }}
int posix_memalign(void** p, size_t a, size_t n) {{
  COUNT(4);
  *p = __libc_memalign(a, n);
  return *p ? 0 : ENOMEM;
}}
void* aligned_alloc(size_t a, size_t n) {{ COUNT(5); return __libc_memalign(a, n); }}
void free(void* p) {{ if (p) COUNT(6); __libc_free(p); }}
#endif
static volatile long regions = 0, regions_one = 0;
#ifdef COUNT_REGIONS
#include <dlfcn.h>
#include <omp.h>
typedef void (*gomp_parallel_t)(void (*)(void*), void*, unsigned, unsigned);
static gomp_parallel_t real_parallel;
void GOMP_parallel(void (*fn)(void*), void* data, unsigned n, unsigned flags) {{
  if (counting) {{
    regions++;
    if (n == 1 || (n == 0 && omp_get_max_threads() == 1)) regions_one++;
  }}
  real_parallel(fn, data, n, flags);
}}
#endif

static void report(const char* what) {{
  printf("%s: %ld allocator calls (", what, allocations);
  for (int k = 0; k < 7; k++) printf("%s%s %ld", k ? ", " : "", call_names[k], calls[k]);
  printf("), %ld parallel regions, %ld of one thread\n", regions, regions_one);
  allocations = regions = regions_one = 0;
  for (int k = 0; k < 7; k++) calls[k] = 0;
}}

{decls}

static int run_once(void* ws, char** outs) {{
  return {name}_run({args}, ws);
}}

#ifndef NO_THREADS
typedef struct {{ char* outs[{nout} + 1]; int failures; }} job_t;
static char* expected[{nout} + 1];

static void* worker(void* arg) {{
  job_t* job = (job_t*)arg;
  void* ws = aligned_alloc(64, ({P}_ARENA_BYTES + 63) / 64 * 64 + 64);
  for (int r = 0; r < 50; r++) {{
    if (run_once(ws, job->outs) != 0) job->failures++;
{compare}
  }}
  free(ws);
  return NULL;
}}
#endif

int main(int argc, char** argv) {{
  if (argc < 3) {{
    fprintf(stderr, "usage: %s IN OUT [run|static|threads|malloc]\n", argv[0]);
    return 2;
  }}
  const char* mode = argc > 3 ? argv[3] : "run";
{load_weights}
  FILE* f = fopen(argv[1], "rb");
  if (!f) return 3;
{read_inputs}
  fclose(f);
  char* outs[{nout} + 1];
{alloc_outputs}
  void* ws = aligned_alloc(64, ({P}_ARENA_BYTES + 63) / 64 * 64 + 64);
  int status;
  if (!strcmp(mode, "static")) status = run_once(NULL, outs);
  else if (!strcmp(mode, "malloc")) {{
#ifdef COUNT_REGIONS
    real_parallel = (gomp_parallel_t)dlsym(RTLD_NEXT, "GOMP_parallel");
    if (!real_parallel) return 6;
#endif
    printf("threads: %d\n", {name}_set_threads(0));  /* libgomp's pool, if any, starts here */
    counting = 1;
    void* volatile probe = malloc(16);  /* probes: prove that the counting allocator is */
    free(probe);                          /* in place (volatile: not optimized away) */
#ifdef COUNT_MALLOC
    probe = memalign(64, 64);
    free(probe);
#endif
    counting = 0;
    report("probes");
    counting = 1;
    status = run_once(ws, outs);
    counting = 0;
    if (status != 0) {{ fprintf(stderr, "%s\n", {name}_strerror(status)); return 1; }}
    report("first run");
    counting = 1;
    for (int r = 0; r < 10 && status == 0; r++) status = run_once(ws, outs);
    counting = 0;
    report("10 more runs");
  }} else status = run_once(ws, outs);
  if (status != 0) {{ fprintf(stderr, "%s\n", {name}_strerror(status)); return 1; }}
#ifndef NO_THREADS
  if (!strcmp(mode, "threads")) {{
    for (int k = 0; k < {nout}; k++) expected[k] = outs[k];
    job_t jobs[2];
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) {{
      jobs[t].failures = 0;
{alloc_job_outputs}
      pthread_create(&threads[t], NULL, worker, &jobs[t]);
    }}
    int failures = 0;
    for (int t = 0; t < 2; t++) {{ pthread_join(threads[t], NULL); failures += jobs[t].failures; }}
    printf("thread mismatches: %d\n", failures);
    if (failures) return 4;
  }}
#endif
  FILE* g = fopen(argv[2], "wb");
{write_outputs}
  fclose(g);
  free(ws);
  printf("ok %s\n", {name}_info()->name);
  return 0;
}}
"""


def driver_source(manifest: dict) -> str:
    name, P = manifest["name"], manifest["name"].upper()
    ins, outs = manifest["inputs"], manifest["outputs"]
    ctype = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t",
             "uint8": "uint8_t", "bool": "uint8_t", "int8": "int8_t", "float16": "uint16_t",
             "bfloat16": "uint16_t", "uint32": "uint32_t", "int16": "int16_t"}
    decls = "\n".join(f"static {ctype[i['dtype']]} in_{i['name']}[{P}_{i['name'].upper()}_SIZE"
                      " + 1] __attribute__((aligned(64)));" for i in ins)
    args = ", ".join([f"in_{i['name']}" for i in ins] +
                     [f"({ctype[o['dtype']]}*)outs[{k}]" for k, o in enumerate(outs)])
    read = "\n".join(f"  if (fread(in_{i['name']}, 1, {P}_{i['name'].upper()}_BYTES, f) != "
                     f"{P}_{i['name'].upper()}_BYTES) return 3;" for i in ins)
    alloc = "\n".join(f"  outs[{k}] = aligned_alloc(64, ({P}_{o['name'].upper()}_BYTES + 63) / 64 "
                      "* 64 + 64);" for k, o in enumerate(outs))
    alloc_job = "\n".join(f"      jobs[t].outs[{k}] = aligned_alloc(64, ({P}_{o['name'].upper()}"
                          "_BYTES + 63) / 64 * 64 + 64);" for k, o in enumerate(outs))
    compare = "\n".join(f"    if (memcmp(job->outs[{k}], expected[{k}], {P}_{o['name'].upper()}"
                        "_BYTES)) job->failures++;" for k, o in enumerate(outs))
    write = "\n".join(f"  fwrite(outs[{k}], 1, {P}_{o['name'].upper()}_BYTES, g);"
                      for k, o in enumerate(outs))
    load = ""
    if manifest["weights"] == "file":
        load = (f"  int loaded = {name}_load_weights(getenv(\"WEIGHTS\") ? getenv(\"WEIGHTS\") : "
                f"\"{name}_weights.bin\");\n"
                f"  if (loaded) {{ fprintf(stderr, \"%s\\n\", {name}_strerror(loaded)); "
                "return 5; }")
    return DRIVER.format(name=name, P=P, decls=decls, args=args, nout=len(outs), compare=compare,
                         read_inputs=read, alloc_outputs=alloc, alloc_job_outputs=alloc_job,
                         write_outputs=write, load_weights=load)


def build_driver(folder: Path, cc: list[str], out: Path, *, link: str = "static",
                 flags: list[str] = ()) -> Path:
    """Compiles the driver for the export in `folder`.

    link: "static" (libNAME.a), "shared" (libNAME.so, rpath to the folder) or
    "sources" (NAME.c and NAME_weights.c compiled in, so `flags` such as
    sanitizers reach the kernels too).
    """
    import json
    manifest = json.loads((folder / "manifest.json").read_text())
    name = manifest["name"]
    src = out.with_suffix(".c")
    src.write_text(driver_source(manifest))
    cmd = [*cc, "-O2", "-std=gnu11", *flags, f"-I{folder}", f"-I{folder / 'runtime'}", str(src)]
    if link == "static":
        cmd += [str(folder / f"lib{name}.a")]
    elif link == "shared":
        cmd += [f"-L{folder}", f"-l{name}", f"-Wl,-rpath,{folder}"]
    else:
        cmd += [str(folder / f"{name}.c"), str(folder / f"{name}_weights.c"),
                "-fno-math-errno", "-fwrapv", "-fno-strict-aliasing"]
        cmd += [str(folder / f) for f in (f"{name}_train.c", f"{name}_run_state.c")
                if (folder / f).exists()]
    cmd += ["-o", str(out), "-lm"] + ([] if "-DNO_THREADS" in flags else ["-lpthread"])
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"compiling the driver failed: {' '.join(cmd)}\n{result.stderr}")
    return out


def write_inputs(path: Path, arrays) -> None:
    path.write_bytes(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays))


def read_outputs(path: Path, manifest: dict) -> list[np.ndarray]:
    from mlframework.core.dtypes import as_dtype
    raw, out, at = path.read_bytes(), [], 0
    for o in manifest["outputs"]:
        dtype = as_dtype(o["dtype"]).numpy
        n = int(np.prod(o["shape"])) * np.dtype(dtype).itemsize
        out.append(np.frombuffer(raw[at:at + n], dtype).reshape(o["shape"]))
        at += n
    return out


def run_driver(exe: Path, folder: Path, inputs, manifest: dict, mode: str = "run",
               prefix: list[str] = (), env=None, cwd=None):
    """(outputs, stdout) of one driver run; raises with stderr on failure."""
    work = Path(str(exe) + f".{mode}")
    write_inputs(work.with_suffix(".in"), inputs)
    result = subprocess.run([*prefix, str(exe), str(work.with_suffix(".in")),
                             str(work.with_suffix(".out")), mode], capture_output=True, text=True,
                            env=env, cwd=cwd or folder, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"{exe} {mode} exited {result.returncode}:\n{result.stdout}"
                             f"{result.stderr}")
    return read_outputs(work.with_suffix(".out"), manifest), result.stdout + result.stderr


def run_wasm(module: Path, folder: Path, inputs, manifest: dict) -> list[np.ndarray]:
    """Runs a wasm32-wasi driver under wasmtime (the PyPI package) in `folder`."""
    import wasmtime
    write_inputs(folder / "wasm.in", inputs)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["driver", "wasm.in", "wasm.out", "run"]
    wasi.preopen_dir(str(folder), ".")
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(module)))
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        if e.code != 0:
            raise AssertionError(f"{module} exited {e.code}") from None
    return read_outputs(folder / "wasm.out", manifest)
