"""PEFT LoRA adapters as PEFT writes them, used as low-rank update data, and versioned on their own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from theta.testing import GitRepo

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")


def gpt2(layers: int = 2) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=layers, n_embd=32, n_head=2, vocab_size=100, n_positions=32)
    return transformers.GPT2LMHeadModel(config)


def llama() -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=100,
    )
    return transformers.LlamaForCausalLM(config)


def adapted(model: transformers.PreTrainedModel, adapter_dir: Path, **lora: object) -> transformers.PreTrainedModel:
    """Save a LoRA adapter of `model` (non-zero factors, as after training) to `adapter_dir`; return it merged."""
    torch.manual_seed(1)
    config = peft.LoraConfig(init_lora_weights=False, **lora)
    wrapped = peft.get_peft_model(model, config)
    wrapped.save_pretrained(adapter_dir)
    return wrapped.merge_and_unload().eval()


def stored(repo: GitRepo, path: str) -> dict:
    return json.loads(repo.blob(f"HEAD:{path}"))["parameters"]


def commit_base(repo: GitRepo, model: transformers.PreTrainedModel) -> None:
    repo.theta("track", "*.safetensors")
    model.save_pretrained(repo.path / "model")
    repo.commit_all("base model")


def outputs(model: transformers.PreTrainedModel) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.arange(16).reshape(1, 16)).logits


@pytest.mark.parametrize("given", ["directory", "weights file"])
def test_gpt2_adapter_gives_the_factors_of_each_conv1d_change(repo: GitRepo, tmp_path: Path, given: str) -> None:
    base = gpt2()
    commit_base(repo, base)
    adapter = tmp_path / "adapter"
    merged = adapted(gpt2(), adapter, r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    merged.save_pretrained(repo.path / "model")
    tuned = repo.read("model/model.safetensors")
    data = adapter if given == "directory" else adapter / "adapter_model.safetensors"
    repo.theta("add", "model/model.safetensors", "--update-type", "low-rank", "--update-data", str(data))
    repo.git("commit", "-q", "-m", "LoRA merged")
    parameters = stored(repo, "model/model.safetensors")
    for layer in range(2):
        step = parameters[f"transformer.h.{layer}.attn.c_attn.weight"]["steps"][-1]
        assert step["update"] == "low-rank"
        assert step["params"]["factors"] == "update-data", "the adapter's factors were used, not an SVD"
        assert step["params"]["rank"] == 4
        assert "lora_scale" not in step["params"], "the scaling came from adapter_config.json"
        assert sum(o["size"] for o in step["objects"].values()) < 32 * 96 * 4 / 2
    assert len(parameters["transformer.h.0.attn.c_proj.weight"]["steps"]) == 1, "a weight the adapter left alone"
    (repo.path / "model" / "model.safetensors").unlink()
    repo.git("checkout", "--", "model/model.safetensors")
    assert repo.read("model/model.safetensors") == tuned, "the checkout is exact"
    loaded = transformers.GPT2LMHeadModel.from_pretrained(repo.path / "model")
    assert torch.equal(outputs(loaded), outputs(merged))


def test_llama_adapter_with_rank_and_alpha_patterns(repo: GitRepo, tmp_path: Path) -> None:
    commit_base(repo, llama())
    adapter = tmp_path / "adapter"
    merged = adapted(
        llama(),
        adapter,
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
        rank_pattern={"v_proj": 2},
        alpha_pattern={"v_proj": 4},
    )
    merged.save_pretrained(repo.path / "model")
    tuned = repo.read("model/model.safetensors")
    repo.theta("add", "model/model.safetensors", "--update-type", "low-rank", "--update-data", str(adapter))
    repo.git("commit", "-q", "-m", "LoRA merged")
    parameters = stored(repo, "model/model.safetensors")
    for layer in range(2):
        for module, rank in (("q_proj", 4), ("v_proj", 2)):
            step = parameters[f"model.layers.{layer}.self_attn.{module}.weight"]["steps"][-1]
            assert (step["update"], step["params"]["factors"], step["params"]["rank"]) == (
                "low-rank",
                "update-data",
                rank,
            )
            assert "lora_scale" not in step["params"]
    repo.git("checkout", "-q", "HEAD~1")
    repo.git("checkout", "-q", "main")
    assert repo.read("model/model.safetensors") == tuned


def test_adapter_keys_that_match_no_parameter_are_refused(repo: GitRepo, tmp_path: Path) -> None:
    commit_base(repo, gpt2(layers=2))
    adapter = tmp_path / "adapter"
    adapted(gpt2(layers=3), adapter, r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    merged = adapted(gpt2(layers=2), tmp_path / "other", r=4, lora_alpha=8, target_modules=["c_attn"])
    merged.save_pretrained(repo.path / "model")
    result = repo.theta(
        "add", "model/model.safetensors", "--update-type", "low-rank", "--update-data", str(adapter), check=False
    )
    assert result.returncode != 0
    assert "'base_model.model.transformer.h.2.attn.c_attn.lora_A.weight'" in result.stderr
    assert "match no parameter" in result.stderr and "Traceback" not in result.stderr
    assert repo.git("diff", "--cached", "--name-only").stdout == "", "nothing was staged"


def test_adapter_without_its_config_is_refused(repo: GitRepo, tmp_path: Path) -> None:
    commit_base(repo, gpt2())
    adapter = tmp_path / "adapter"
    adapted(gpt2(), adapter, r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    lone = tmp_path / "lone" / "adapter_model.safetensors"
    lone.parent.mkdir()
    shutil.copy(adapter / "adapter_model.safetensors", lone)
    gpt2().save_pretrained(repo.path / "model")
    result = repo.theta("add", "model/model.safetensors", "--update-data", str(lone), check=False)
    assert result.returncode != 0 and "adapter_config.json" in result.stderr


def test_an_adapter_tracked_on_its_own_is_versioned_like_any_checkpoint(repo: GitRepo, tmp_path: Path) -> None:
    repo.theta("track", "*.safetensors")
    versions = []
    for seed in (1, 2):
        base = gpt2()
        torch.manual_seed(seed)
        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False)
        wrapped = peft.get_peft_model(base, config)
        wrapped.save_pretrained(repo.path / "adapter")
        versions.append(repo.read("adapter/adapter_model.safetensors"))
        repo.commit_all(f"adapter v{seed}")
    metadata = json.loads(repo.blob("HEAD:adapter/adapter_model.safetensors"))
    assert metadata["format"] == "safetensors"
    assert "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight" in metadata["parameters"]
    repo.git("checkout", "-q", "HEAD~1")
    assert repo.read("adapter/adapter_model.safetensors") == versions[0]
    repo.git("checkout", "-q", "main")
    assert repo.read("adapter/adapter_model.safetensors") == versions[1]
    loaded = peft.PeftModel.from_pretrained(gpt2(), repo.path / "adapter")
    assert loaded.peft_config["default"].r == 4
