/* generate.c: greedy generation with a language model exported by `aotc export --hf`,
 * from C alone. Prints the prompt's ids and the generated ones, separated by spaces.
 *
 *   aotc export --hf path/to/gpt2 --decode --max-seq 128 --name lm -o build/lm
 *   cc -O2 -Ibuild/lm examples/c/generate.c build/lm/liblm.a -lm -o generate
 *   ./generate 32 464 2068 7586 21831     # 32 new tokens after the prompt's ids
 *
 * The library must be exported with --name lm (this program uses the lm_ names).
 * Turn the ids back into text with the model's tokenizer.json (README.md shows how).
 */
#include <stdio.h>
#include <stdlib.h>
#include "lm.h"

/* The caller owns the key/value cache and the workspace: nothing is allocated. */
static unsigned char cache[LM_KV_CACHE_BYTES] __attribute__((aligned(LM_WORKSPACE_ALIGN)));
static unsigned char workspace[LM_WORKSPACE_BYTES] __attribute__((aligned(LM_WORKSPACE_ALIGN)));
static float logits[LM_VOCAB_SIZE];
static int32_t ids[LM_MAX_SEQ];

static int32_t argmax(const float* x, int n) {
  int32_t best = 0;  /* the first of equal maxima, as transformers' greedy search */
  for (int32_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s NEW_TOKENS PROMPT_ID... (at most %d ids in all)\n", argv[0],
            LM_MAX_SEQ);
    return 2;
  }
  const long wanted = strtol(argv[1], NULL, 10);
  const int n = argc - 2;
  if (wanted < 1 || n + wanted > LM_MAX_SEQ) {
    fprintf(stderr, "the prompt (%d ids) and the new tokens (%ld) must fit in %d positions\n",
            n, wanted, LM_MAX_SEQ);
    return 2;
  }
  for (int i = 0; i < n; i++) ids[i] = (int32_t)strtol(argv[2 + i], NULL, 10);
  int status = lm_prefill(ids, n, logits, cache, workspace);
  int total = n;
  while (status == LM_OK && total < n + wanted) {
    ids[total] = argmax(logits, LM_VOCAB_SIZE);
    total++;
    if (total < n + wanted)  /* the last token needs no logits after it */
      status = lm_decode_step(ids[total - 1], total - 1, logits, cache, workspace);
  }
  if (status != LM_OK) {
    fprintf(stderr, "%s\n", lm_strerror(status));
    return 1;
  }
  for (int i = 0; i < total; i++) printf(i ? " %d" : "%d", (int)ids[i]);
  printf("\n");
  return 0;
}
