// The PPO trainer (TRL's PPOTrainer.train, trl/trainer/ppo_trainer.py): per update, sample responses
// from the policy for a batch of prompts, score them with a reward model, penalise the KL from a frozen
// reference, estimate advantages with GAE on a value function, and run num_ppo_epochs of clipped PPO
// over shuffled mini-batches. The math of one update lives in train/ppo_math.h; this file owns the
// loop around it: models, rollouts, the optimizer, logging, samples, checkpoints and resume.
//
// Everything that decides the numbers is a pure function of (seed, update, row, epoch): the data order
// (RNG_STREAM_SHUFFLE keyed by the pass over the prompts), token sampling (RNG_STREAM_SAMPLE keyed by
// update and global row, counter = response slot) and mini-batch permutations (RNG_STREAM_PPO keyed by
// update and PPO epoch). A resumed run therefore replays exactly what the uninterrupted run would have.
//
// Differences from TRL, each deliberate (see also ppo_math.h):
// - Padding is tracked with masks, never by comparing ids with pad_token_id: a stop token the policy
//   emits stays part of its response (trained, and the score is read there).
// - The score is added at the last real response token (TRL adds it one slot later: its issue 3750).
// - Reward models with another tokenizer than the policy's, encoders (BERT...) included, work: the
//   response is decoded with the policy tokenizer and re-encoded with the reward model's own.
// - Per-update batch = per_device_train_batch_size * gradient_accumulation_steps * num_mini_batches
//   prompts, as TRL's local_batch_size.
// - The policy's log-probs of a rollout come from a full forward of the sampled sequence (not from the
//   sampler's logits), with the same model and the same tokens as the update's forward, so the first
//   PPO step sees ratio 1 up to float rounding.
#ifndef RLHF_TRAIN_PPO_TRAINER_H
#define RLHF_TRAIN_PPO_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "base/dist.h"
#include "base/error.h"
#include "models/peft.h"
#include "train/ppo_math.h"
#include "train/preference_data.h"

// The columns of training_log.csv for `rlhf ppo` (the contract's, in this order).
#define PPO_LOG_COLUMNS                                                                                         \
    "episode", "step", "objective/kl", "objective/entropy", "objective/non_score_reward",                     \
        "objective/rlhf_reward", "objective/scores", "policy/approxkl_avg", "policy/clipfrac_avg",              \
        "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg", "policy/entropy_avg", "val/ratio",             \
        "val/ratio_var", "val/num_eos_tokens", "lr", "eps"
#define PPO_LOG_N_COLUMNS 18

// TRL adds 1e-7 to the temperature everywhere it divides logits by it (generation config and forwards).
#define PPO_TEMPERATURE_EPS 1e-7
// Responses written to samples.jsonl at each sample point (the first rows of that update's batch).
#define PPO_SAMPLES_PER_POINT 4

typedef enum {
    PPO_VALUE_REWARD,  // a copy of the reward model, its score head applied per token (TRL's default)
    PPO_VALUE_HEAD     // a v_head Linear(hidden, 1) on the policy's last hidden state (TRL's old ValueHead)
} ppo_value_source;

typedef struct {
    const char *model_name_or_path;   // the policy to train
    const char *sft_model_path;       // the frozen reference
    const char *reward_model_path;    // a directory, or http://HOST:PORT/get_reward (train/reward_source.h)
    const char *dataset_name;         // prompt rows {"prompt": str} or {"prompt_ids": [...]}
    const char *output_dir;
    const char *resume_from_checkpoint;  // NULL: fresh run
    int overwrite_output_dir;

    double learning_rate;             // 3e-6 (TRL PPOConfig)
    double weight_decay;              // 0
    double max_grad_norm;             // 1.0; <= 0: no clipping
    int per_device_train_batch_size;  // micro-batch
    int gradient_accumulation_steps;  // micro-batches per mini-batch (optimizer step)
    int num_mini_batches;
    int num_ppo_epochs;
    int local_rollout_forward_batch_size;
    long long total_episodes;         // <= 0: num_train_epochs * prompts
    double num_train_epochs;
    int response_length;
    long long max_prompt_length;      // > 0: prompts keep their last N tokens (TRL's left truncation); <= 0:
                                      // only the policy's positions less response_length bound them
    double temperature;
    const char *stop_token;           // "eos", "none", a token id, or a token (e.g. "<|endoftext|>")
    int has_missing_eos_penalty;
    double missing_eos_penalty;
    double kl_coef;
    ppo_kl_estimator kl_estimator;
    int adap_kl_ctrl;                 // adaptive KL controller (Ziegler et al.)
    double kl_target, kl_horizon;
    double cliprange, cliprange_value, vf_coef, gamma, lam;
    int whiten_rewards;
    ppo_value_source value_model;
    pref_encoding encoding;           // how an encoder reward model reads (prompt, response)
    int normalize_reward;             // (r - mean) / std from the reward model's config.json (OpenRLHF)
    double reward_timeout;            // remote rewards: seconds per request
    int reward_retries;               // remote rewards: tries after the first, with exponential backoff
    uint64_t seed;
    long long save_steps;             // checkpoint every N updates; <= 0: none
    long long save_total_limit;       // > 0: keep only the newest N checkpoint-<UPDATE> directories
    int num_sample_generations;       // sample points over the run (TRL's); 0: no samples.jsonl
    volatile sig_atomic_t *stop;      // set by the CLI's SIGINT/SIGTERM handler; may be NULL
    int quiet;                        // no progress bar
    // LoRA / QLoRA (models/peft.h; peft.use_peft 0 = full fine-tuning). With adapters the policy is
    // model_name_or_path + LoRA and the reference is the same weights with the adapters off (TRL's
    // PPOTrainer sets ref_model None with a peft policy): sft_model_path is not loaded. The value model
    // stays a full fp32 model (TRL's value model is a separate full model too); with load_in_4bit the
    // frozen reward model is loaded 4-bit as well (TRL quantizes only the policy; ours is frozen, so the
    // 4-bit copy only saves memory). The policy is saved as a peft adapter (+ merged with merge_adapter).
    peft_options peft;
    int merge_adapter;
    // A reward model whose score head is not in its checkpoint (a base or causal-LM model) is an error
    // unless this is set: its rewards would be noise from a random head.
    int allow_new_reward_head;
    int gradient_checkpointing;       // the trained models recompute each layer's activations in backward
    long long logging_steps;          // a training_log.csv row (and a JSON line on stdout) every N updates
    // Held-out prompts (one of the two, or none): at the start, every logging_steps updates and the end,
    // responses to every one are sampled (own keys: training is unchanged) and scored; the mean is printed
    // as {"eval/scores": ...} on stdout.
    const char *eval_dataset_name;
    double eval_split;                // fraction of --dataset_name's prompts held out, in [0, 1)
    // Data-parallel processes (base/dist.h; NULL: one). As TRL under torchrun: per_device_train_batch_size
    // x gradient_accumulation_steps x num_mini_batches is each process's local batch, an update samples
    // local x N episodes (TRL's batch_size). Rank r generates, scores and values rows [r x local, (r+1) x
    // local) of the update (sampling keyed by the global row, so the draws do not depend on N); the rollout
    // is then gathered, so rewards, GAE and whitening see the whole batch (global statistics), and each
    // PPO micro-batch of micro x N rows is split r, r+N, ... with gradients summed over ranks and every
    // mean over the global micro-batch's tokens. Rank 0 writes.
    dist *dist;
    const char *torch_dtype;          // dtype of the saved policy: NULL / "auto" = its config.json's (models/model.h)
} ppo_args;

// TRL's / the contract's defaults (every pointer NULL).
void ppo_args_defaults(ppo_args *a);
// Range checks of the numeric flags, each error naming the flag (RLHF_EINPUT).
rlhf_status ppo_args_check(const ppo_args *a, rlhf_err *err);

typedef struct {
    long long updates_done;
    long long episodes_done;
    double first_score, last_score;   // objective/scores of the first and last update of this process
    double last_kl;
    double first_eval_score, last_eval_score;  // mean score on the eval prompts (NaN without them)
    int interrupted;
} ppo_result;

// Loads and validates every input (models, tokenizers, prompts, flags) before writing anything, then
// trains, writing OUTPUT_DIR/{training_log.csv, samples.jsonl, report.html, checkpoint-N/} and finally
// the policy (HF layout, tokenizer, generation_config.json) at OUTPUT_DIR. Returns RLHF_EINTERRUPT after
// writing checkpoint-{UPDATE} when *stop was set.
rlhf_status ppo_train(const ppo_args *a, ppo_result *res, rlhf_err *err);

// Number of updates of a run: ceil(total_episodes / batch) as TRL's num_total_batches.
long long ppo_num_updates(long long total_episodes, int batch);

#endif
