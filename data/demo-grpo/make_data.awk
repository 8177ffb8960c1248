# Synthetic arithmetic for `make demo-grpo`: "a + b =" for single digits a, b, in a 24-word vocabulary
# (data/demo-grpo/tokenizer: WordLevel, the numbers 0..19, +, =, <|endoftext|>).
#   what=sft   REPS noisy SFT rows per pair: the answer is off by one (a + b + 1) with probability NOISE, so the
#              SFT policy's most likely answer is often wrong while the right one keeps real probability
#   what=grpo  prompts with their "solution" for GRPO: 80 pairs
#   what=eval  the 20 pairs GRPO never sees (held out), with their solutions
BEGIN {
  srand(seed)
  for (a = 0; a < 10; a++) for (b = 0; b < 10; b++) {
    held = ((a * 7 + b * 3) % 5 == 0)
    if (what == "sft") {
      for (k = 0; k < reps; k++) {
        c = a + b
        if (rand() < noise) c = c + 1
        printf "{\"prompt\": \"%d + %d =\", \"completion\": \" %d\"}\n", a, b, c
      }
    } else if (what == "grpo" && !held) printf "{\"prompt\": \"%d + %d =\", \"solution\": \"%d\"}\n", a, b, a + b
    else if (what == "eval" && held) printf "{\"prompt\": \"%d + %d =\", \"solution\": \"%d\"}\n", a, b, a + b
  }
}
