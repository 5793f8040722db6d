"""Shared, cached artifacts for the aotc tests: trained checkpoints, exports and a
C driver program generated for an export's header.

Artifacts are built once per test session and shared between pytest-xdist
workers: each lives in a folder next to the workers' temporary roots, built
under a file lock and marked done with a `.done` file.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "aotc-shared"
    path.mkdir(exist_ok=True)
    return path


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached(root: Path, name: str, build) -> Path:
    """root/name, built by `build(path)` once (across xdist workers)."""
    path = root / name
    with _locked(path):
        if not (path / ".done").exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            build(path)
            (path / ".done").touch()
    return path


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


# ---- the C driver program ----

DRIVER = r"""
/* Test driver for {name}.h: reads the inputs from argv[1] (raw bytes, in order),
 * runs the model and writes the outputs to argv[2].
 * mode "run": once with a caller workspace; "static": NULL workspace;
 * "threads": two threads with their own workspaces, 50 runs each, results
 * compared with the first run; "malloc": counts allocator calls inside run. */
#ifndef NO_THREADS
#include <pthread.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "{name}.h"

static volatile int counting = 0;
static volatile long allocations = 0;
#ifdef COUNT_MALLOC
extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void __libc_free(void*);
void* malloc(size_t n) {{ if (counting) allocations++; return __libc_malloc(n); }}
void* calloc(size_t a, size_t b) {{ if (counting) allocations++; return __libc_calloc(a, b); }}
void* realloc(void* p, size_t n) {{ if (counting) allocations++; return __libc_realloc(p, n); }}
void free(void* p) {{ if (counting && p) allocations++; __libc_free(p); }}
#endif

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
  else {{
    counting = 1;
    free(malloc(16));  /* a probe: proves that the counting allocator is in place */
    long probe = allocations;
    allocations = 0;
    status = run_once(ws, outs);
    counting = 0;
    if (!strcmp(mode, "malloc")) printf("allocator calls of the probe: %ld\n", probe);
    counting = 0;
  }}
  if (status != 0) {{ fprintf(stderr, "%s\n", {name}_strerror(status)); return 1; }}
  if (!strcmp(mode, "malloc")) printf("allocations inside run: %ld\n", allocations);
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
        if (folder / f"{name}_train.c").exists():
            cmd.append(str(folder / f"{name}_train.c"))
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
