/* digits_demo.c: runs the exported digits MLP on the test images, from C alone.
 *
 *   make demo      # trains, exports with aotc, builds and runs this program
 *   cc -O2 -Ibuild/demo/digits -Ibuild/demo/digits/runtime examples/c/digits_demo.c \
 *      build/demo/digits/libdigits.a -lm -o digits_demo
 *   ./digits_demo build/demo/digits_test.bin
 *
 * The data file holds: int32 count, then count images of DIGITS_X_SIZE float32
 * pixels, then count int32 labels (written by examples/export_demo.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include "digits.h"

/* One workspace for the single thread of this program (DIGITS_ARENA_BYTES, 64-byte aligned). */
static unsigned char workspace[DIGITS_ARENA_BYTES] __attribute__((aligned(DIGITS_WORKSPACE_ALIGN)));

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "build/demo/digits_test.bin";
  FILE* f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); return 1; }
  int32_t count = 0;
  if (fread(&count, sizeof count, 1, f) != 1 || count <= 0) { fprintf(stderr, "bad %s\n", path); return 1; }
  float* images = malloc(sizeof(float) * DIGITS_X_SIZE * (size_t)count);
  int32_t* labels = malloc(sizeof(int32_t) * (size_t)count);
  if (!images || !labels ||
      fread(images, sizeof(float) * DIGITS_X_SIZE, (size_t)count, f) != (size_t)count ||
      fread(labels, sizeof(int32_t), (size_t)count, f) != (size_t)count) {
    fprintf(stderr, "%s is truncated\n", path);
    return 1;
  }
  fclose(f);

  const digits_info_t* info = digits_info();
  printf("%s (%s): input %s[%d], arena %zu bytes, weights %zu bytes (%s)\n", info->name,
         info->tool_version, DIGITS_X_DTYPE, DIGITS_X_SIZE, info->arena_bytes,
         info->weights_bytes, info->weights_mode);

  int correct = 0;
  float logits[DIGITS_OUTPUT_SIZE];
  for (int32_t i = 0; i < count; i++) {
    int status = digits_run(images + (size_t)i * DIGITS_X_SIZE, logits, workspace);
    if (status != DIGITS_OK) { fprintf(stderr, "%s\n", digits_strerror(status)); return 1; }
    int best = 0;
    for (int k = 1; k < DIGITS_OUTPUT_SIZE; k++) if (logits[k] > logits[best]) best = k;
    correct += best == labels[i];
    if (i < 12) printf("image %3d: predicted %d, label %d%s\n", (int)i, best, (int)labels[i],
                       best == labels[i] ? "" : "   <- wrong");
  }
  printf("accuracy on %d test images: %.2f%% (%d correct)\n", (int)count,
         100.0 * correct / count, correct);
  free(images);
  free(labels);
  return 0;
}
