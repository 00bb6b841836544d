"""Hugging Face model repositories as save_pretrained writes them: sharded weights, index, config and tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from theta.testing import GitRepo

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

MODEL_DIR = "models/tiny-llama"
WORDS = ["<unk>", "<s>", "</s>", "the", "model", "is", "small", "and", "versioned", "in", "git"]


def tiny_llama() -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=100,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


def tokenizer() -> transformers.PreTrainedTokenizerFast:
    vocab = {word: i for i, word in enumerate(WORDS)}
    inner = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    inner.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=inner, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def save(repo: GitRepo, model: transformers.PreTrainedModel, shard_size: str) -> Path:
    """Write the model directory as save_pretrained does, replacing what was there."""
    target = repo.path / MODEL_DIR
    for old in target.glob("model*.safetensors*"):
        old.unlink()
    model.save_pretrained(target, max_shard_size=shard_size)
    tokenizer().save_pretrained(target)
    return target


def stored_objects(repo: GitRepo, rev: str) -> dict[str, set[str]]:
    """Per kind ("tensors", "skeletons"), the objects the model's shards at `rev` name."""
    found: dict[str, set[str]] = {"tensors": set(), "skeletons": set()}
    listing = repo.git("ls-tree", "-r", "--name-only", rev, "--", MODEL_DIR).stdout.split()
    for path in listing:
        if path.endswith(".safetensors"):
            metadata = json.loads(repo.blob(f"{rev}:{path}"))
            if metadata.get("skeleton"):
                found["skeletons"].add(metadata["skeleton"]["oid"])
            for parameter in metadata["parameters"].values():
                for step in parameter["steps"]:
                    found["tensors"].update(o["oid"] for o in step["objects"].values())
    return found


def state(path: Path) -> dict[str, torch.Tensor]:
    return transformers.LlamaForCausalLM.from_pretrained(path).state_dict()


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def fine_tuned(model: transformers.PreTrainedModel) -> transformers.PreTrainedModel:
    """A few SGD steps on the attention projections of the last layer only."""
    trainable = [p for n, p in model.named_parameters() if "layers.1.self_attn" in n]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    tokens = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(3))
    for _ in range(3):
        optimizer.zero_grad()
        model(tokens, labels=tokens).loss.backward()
        optimizer.step()
    return model


@pytest.fixture
def committed(repo: GitRepo) -> tuple[GitRepo, transformers.PreTrainedModel]:
    model = tiny_llama()
    save(repo, model, "20KB")
    track = repo.theta("track", "--huggingface", MODEL_DIR)
    assert f"theta: tracking '{MODEL_DIR}/*.safetensors'" in track.stdout
    repo.git("add", MODEL_DIR)
    repo.git("commit", "-q", "-m", "pretrained")
    return repo, model


def test_one_command_tracks_a_sharded_save_pretrained_directory(committed) -> None:
    repo, model = committed
    files = repo.git("ls-tree", "-r", "--name-only", "HEAD", "--", MODEL_DIR).stdout.split()
    shards = [f for f in files if f.endswith(".safetensors")]
    assert len(shards) > 2, files
    for shard in shards:
        assert json.loads(repo.blob(f"HEAD:{shard}"))["format"] == "safetensors"
    index = json.loads(repo.blob(f"HEAD:{MODEL_DIR}/model.safetensors.index.json"))
    assert sorted({f"{MODEL_DIR}/{s}" for s in index["weight_map"].values()}) == sorted(shards)
    for text in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert f"{MODEL_DIR}/{text}" in files
        assert repo.blob(f"HEAD:{MODEL_DIR}/{text}") == repo.read(f"{MODEL_DIR}/{text}"), "kept as it is"
    assert repo.status() == ""
    assert_same_state(state(repo.path / MODEL_DIR), model.state_dict())
    loaded = transformers.AutoTokenizer.from_pretrained(repo.path / MODEL_DIR)
    assert loaded("the model is small")["input_ids"] == [3, 4, 5, 6]


def edited(model: transformers.PreTrainedModel) -> transformers.PreTrainedModel:
    """A few elements of every attention projection changed: each is stored as a small update."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "self_attn" in name:
                p.view(-1)[:3] += 1.0
    return model


def test_resharding_stores_no_tensor_again(committed) -> None:
    repo, model = committed
    save(repo, edited(model), "20KB")
    repo.commit_all("edited")
    before = stored_objects(repo, "HEAD")
    parameters = json.loads(repo.blob(f"HEAD:{MODEL_DIR}/model-00002-of-00007.safetensors"))["parameters"]
    assert any(len(p["steps"]) > 1 for p in parameters.values()), "some tensors are stored as updates"
    count = repo.lfs_object_count()
    save(repo, model, "40KB")
    assert len(list((repo.path / MODEL_DIR).glob("model-*-of-00007.safetensors"))) == 0, "the tensors moved"
    repo.commit_all("resharded")
    after = stored_objects(repo, "HEAD")
    assert after["tensors"] <= before["tensors"], "every tensor was found in the shard it came from"
    assert repo.lfs_object_count() - count == len(after["skeletons"] - before["skeletons"]), "only the shard headers"
    count = repo.lfs_object_count()
    save(repo, model, "1GB")  # one file, no index: from shards back to model.safetensors
    assert not (repo.path / MODEL_DIR / "model.safetensors.index.json").exists()
    repo.commit_all("one file")
    assert stored_objects(repo, "HEAD")["tensors"] <= before["tensors"]
    assert repo.lfs_object_count() <= count + 1, "only the new file's header was stored"
    for rev in ("main~2", "main~1", "main"):
        repo.git("checkout", "-q", rev)
        assert_same_state(state(repo.path / MODEL_DIR), model.state_dict())


def test_fine_tune_stores_only_what_changed_and_every_revision_loads(committed) -> None:
    repo, model = committed
    original = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = fine_tuned(model)
    save(repo, tuned, "20KB")
    repo.commit_all("fine-tuned")
    changed = {n for n in original if not torch.equal(original[n], tuned.state_dict()[n])}
    assert changed and all("layers.1.self_attn" in n for n in changed)
    new = stored_objects(repo, "HEAD")["tensors"] - stored_objects(repo, "HEAD~1")["tensors"]
    assert 0 < len(new) <= 4 * len(changed), "objects only for the changed tensors"
    repo.git("checkout", "-q", "HEAD~1")
    assert_same_state(state(repo.path / MODEL_DIR), original)
    repo.git("checkout", "-q", "main")
    assert_same_state(state(repo.path / MODEL_DIR), tuned.state_dict())


def test_diff_log_and_load_treat_the_shards_as_one_checkpoint(committed) -> None:
    import theta

    repo, model = committed
    original = {k: v.clone() for k, v in model.state_dict().items()}
    save(repo, model, "40KB")
    repo.commit_all("resharded")
    tuned = fine_tuned(model)
    save(repo, tuned, "40KB")
    repo.commit_all("fine-tuned")
    index = f"{MODEL_DIR}/model.safetensors.index.json"

    [resharded] = [json.loads(line) for line in repo.theta("diff", "HEAD~2", "HEAD~1", "--json").stdout.splitlines()]
    assert resharded["path"] == index
    assert {p["status"] for p in resharded["parameters"]} == {"unchanged"}, "tensors that moved are unchanged"
    assert len(resharded["parameters"]) == len(original)
    [tuned_diff] = [json.loads(line) for line in repo.theta("diff", "HEAD~1", "HEAD", "--json").stdout.splitlines()]
    changed = {p["name"] for p in tuned_diff["parameters"] if p["status"] == "changed"}
    assert changed == {n for n in original if not torch.equal(original[n], tuned.state_dict()[n])}
    by_path = repo.theta("diff", "--json", "HEAD~1", "HEAD", "--", index).stdout
    assert [json.loads(line)["path"] for line in by_path.splitlines()] == [index]

    log = [json.loads(line) for line in repo.theta("log", "--json").stdout.splitlines()]
    assert [entry["subject"] for entry in log] == ["fine-tuned", "resharded", "pretrained"]
    assert [f["path"] for entry in log for f in entry["files"]] == [index] * 3
    reshard = log[1]["files"][0]
    assert (reshard["changed"], reshard["added"], reshard["removed"]) == (0, 0, 0)
    assert log[0]["files"][0]["changed"] == len(changed)
    assert log[2]["files"][0]["added"] == len(original)

    for rev, expected in (("HEAD~2", original), ("HEAD~1", original), ("HEAD", tuned.state_dict())):
        loaded = theta.load(index, rev=rev, repo=repo.path)
        assert loaded.keys() == expected.keys()
        for name, array in loaded.items():
            assert (array == expected[name].numpy()).all(), (rev, name)
    some = theta.load(index, rev="HEAD", params=["model.layers.1.self_attn.*"], repo=repo.path)
    assert some and all(".layers.1.self_attn." in name for name in some)
    assert len(theta.info(index, repo=repo.path).parameters) == len(original)
    assert {p.status for p in theta.diff(index, "HEAD~2", "HEAD~1", repo=repo.path).parameters} == {"unchanged"}
