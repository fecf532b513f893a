"""Fine-tuning on W CPU processes (gloo) the way srun tasks run it: every process runs this same
code with ``LOCAL_RANK`` set, so Lightning joins the processes instead of starting its own.

Shared by the DDP test (which runs 1 process in pytest and 2 through ``torch.multiprocessing``)
and kept free of pytest so the spawned processes import only this file.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

VOCAB, PAD = 48, 0
STEPS, GLOBAL_BATCH = 3, 8
HP = {  # large lambdas and learning rate so both terms move the parameters visibly in 3 steps
    "flops": {"lambda_q": 0.05, "lambda_d": 0.03},
    "joint_flops": {"lambda_joint": 0.05},
}


def regularizers(name: str, warmup_steps: int) -> dict:
    """``{name: regulariser}`` of ``HP[name]`` with a quadratic λ ramp of ``warmup_steps``."""
    from splade_exp.regularizers import FlopsPerSide, JointFlops, QuadraticRamp

    cls = {"flops": FlopsPerSide, "joint_flops": JointFlops}[name]
    return {name: cls(**HP[name], schedule=QuadraticRamp(warmup_steps))}


def tiny_encoder(seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    from splade_exp.models.encoder import SpladeEncoder

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, pad_token_id=PAD,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # no dropout: same math on 1 or 2
    return SpladeEncoder.from_masked_lm(BertForMaskedLM(cfg))


class Pairs(Dataset):
    """(query ids, positive ids, positive key, [negative ids], [negative keys]) with repeated
    documents, so the duplicate-positive masking crosses rank boundaries."""

    def __init__(self, n: int = 32, n_docs: int = 20, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.docs = [[rng.randrange(1, VOCAB) for _ in range(rng.randrange(3, 10))] for _ in range(n_docs)]
        self.items = []
        for _ in range(n):
            q = [rng.randrange(1, VOCAB) for _ in range(rng.randrange(2, 6))]
            pos, neg = rng.randrange(n_docs), rng.randrange(n_docs)
            self.items.append((q, self.docs[pos], pos, [self.docs[neg]], [neg]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded to the longest sequence of this (per-rank) batch, as the real collator does."""
    width = max(len(s) for s in seqs)
    ids = torch.tensor([s + [PAD] * (width - len(s)) for s in seqs])
    return ids, (ids != PAD).long()


def collate(items):
    """The layout of ``PairCollator``: documents = [positives | negatives, query-major]."""
    q_ids, q_mask = _pad([it[0] for it in items])
    d_ids, d_mask = _pad([it[1] for it in items] + [n for it in items for n in it[3]])
    keys = [it[2] for it in items] + [k for it in items for k in it[4]]
    return {"q_input_ids": q_ids, "q_attention_mask": q_mask, "d_input_ids": d_ids, "d_attention_mask": d_mask,
            "doc_keys": torch.tensor(keys), "pos_index": torch.arange(len(items))}


class WordTokenizer:
    """Texts of space-separated ids -> the tensors ``evaluate.encode`` asks a tokenizer for."""

    def __call__(self, texts, truncation=True, max_length=32, padding=True, return_tensors="pt"):
        ids, mask = _pad([[int(t) for t in text.split()][:max_length] for text in texts])
        return {"input_ids": ids, "attention_mask": mask}


def texts(n: int = 13, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(str(rng.randrange(1, VOCAB)) for _ in range(rng.randrange(2, 9))) for _ in range(n)]


class LossRecorder(L.Callback):
    """Records the logged (rank-averaged) training loss and regulariser terms of every step."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        m = trainer.callback_metrics
        self.rows.append({k: float(m[f"train/{k}"]) for k in ("loss", "rank_loss", "flops_q", "flops_d")})


def train(regularizer: str, init_state: dict, world_size: int, root: Path):
    """3 optimizer steps on global batches of 8 over ``world_size`` processes of this group."""
    from splade_exp.stages.fit import GlobalBatchData, make_trainer
    from splade_exp.stages.splade import SpladeModule

    encoder = tiny_encoder()
    encoder.load_state_dict(init_state)
    module = SpladeModule(encoder, regularizers=regularizers(regularizer, warmup_steps=2), lr=1e-2, weight_decay=0.01,
                          warmup_steps=0, max_steps=STEPS)
    tcfg = OmegaConf.create({
        "accelerator": "cpu", "devices": world_size, "num_nodes": 1,
        "strategy": "ddp" if world_size > 1 else "auto", "precision": "32-true",
        "accumulate_grad_batches": 1, "gradient_clip_val": 1.0, "log_every_n_steps": 1,
        "enable_progress_bar": False,
    })
    recorder = LossRecorder()
    trainer = make_trainer(tcfg, root, STEPS, callbacks=[recorder], use_distributed_sampler=False)
    trainer.fit(module, datamodule=GlobalBatchData(Pairs(), collate, GLOBAL_BATCH, seed=0))
    return module, recorder.rows


def worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One rank: train with both regularisers, then encode a text list into shards on disk (each
    rank its own shards); rank 0 saves what it trained, which shards each rank wrote, the matrix."""
    import torch.distributed as dist

    from splade_exp.stages.evaluate import encode_to_store
    from splade_exp.vectors import ShardedVectors

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      NODE_RANK="0", LOCAL_RANK=str(rank), RANK=str(rank))
    out = Path(out)
    init_state = torch.load(out / "init.pt")
    result = {}
    for regularizer in HP:
        module, rows = train(regularizer, init_state, world_size, out / f"rank{rank}")
        result[regularizer] = {"rows": rows, "state": {k: v.detach().clone() for k, v in module.encoder.state_dict().items()}}
    assert dist.is_initialized(), "the process group must outlive trainer.fit for the sharded evaluation"
    store = ShardedVectors.open(out / "vectors", "docs", {"test": "ddp"}, len(texts()), VOCAB, shard_size=3)
    wrote = encode_to_store(module.encoder, WordTokenizer(), texts(), store, max_length=32, batch_size=4)
    shards = [None] * world_size
    dist.all_gather_object(shards, wrote)  # only the shard numbers travel, for the test
    if rank == 0:  # after the barrier in encode_to_store: every shard is on disk
        result["encoded"] = store.matrix()
        result["wrote"] = shards
        torch.save(result, out / "ddp.pt")
    # Leave together: a rank exiting with the group alive can abort in gloo's teardown (SIGABRT,
    # "terminate called without an active exception") while the other still uses it.
    dist.barrier()
    dist.destroy_process_group()


# --------------------------------------------------------------------------- EMLM pretraining stage
EMLM_STEPS, EMLM_BATCH = 4, 8
EMLM_WORDS = ["river", "stone", "falls", "runs", "green", "cold", "light", "north", "deep", "slow", "bright", "old",
              "hill", "rain", "wind", "sea"]


def emlm_texts(n: int = 60, seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    return {f"d{i}": " ".join(rng.choice(EMLM_WORDS) for _ in range(rng.randrange(3, 12))) for i in range(n)}


def emlm_spec(root: Path, world_size: int):
    """A toy stage=pretrain configuration: in-domain corpus, a 10-word unigram head, no dropout."""
    from splade_exp.stages.pretrain import EmlmSpec

    pretrain = OmegaConf.create({
        "name": "toy", "enabled": True, "corpus": "in_domain", "text_field": "text", "lr": 1e-2, "steps": EMLM_STEPS,
        "batch_size": EMLM_BATCH, "max_length": 24, "repetition": 1, "mask_rate": 0.3, "mask_token_prob": 0.8,
        "random_token_prob": 0.1, "weight_decay": 0.01, "warmup_steps": 0, "val_size": 8, "val_every_n_steps": 2,
        "log_every_n_steps": 1, "stats_docs": 6, "stats_batch_size": 4, "checkpoint": None,
        "checkpoint_every_n_steps": 2, "missing": "build", "wait_timeout_min": 1, "wait_poll_s": 0.2})
    trainer = OmegaConf.create({
        "accelerator": "cpu", "devices": world_size, "num_nodes": 1, "strategy": "ddp" if world_size > 1 else "auto",
        "precision": "32-true", "accumulate_grad_batches": 1, "gradient_clip_val": 1.0, "log_every_n_steps": 1,
        "enable_progress_bar": False, "num_workers": 0})
    return EmlmSpec(pretrain, trainer, OmegaConf.create({"kind": "unigram", "size": 10}),
                    OmegaConf.create({"kind": "esplade", "bias": "mean"}), 0, {"backbone": "toy"},
                    {"source": "toy"}, root / f"artifacts{world_size}")


def emlm_model(root: Path):
    """(encoder, tokenizer, collection, words) of the toy pretraining; the same in every process."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    encoder = tiny_emlm_encoder(tokenizer)
    encoder.load_state_dict(torch.load(root / "emlm_init.pt"))
    collection = SimpleNamespace(corpus=emlm_texts(), general_path=None, path=root)
    return encoder, tokenizer, collection, EMLM_WORDS[:10]


def tiny_emlm_encoder(tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    from splade_exp.models.encoder import SpladeEncoder

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, pad_token_id=tokenizer.pad_token_id,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # no dropout: same math on 1 or 2
    encoder = SpladeEncoder.from_masked_lm(BertForMaskedLM(cfg))
    encoder.decoder = torch.nn.Linear(16, 10)  # the 10-word unigram head
    return encoder


def emlm_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One rank of a stage=pretrain job: every rank calls the stage; rank 0 publishes the artifact."""
    import torch.distributed as dist

    from splade_exp.stages.pretrain import pretrain_emlm

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      NODE_RANK="0", LOCAL_RANK=str(rank), RANK=str(rank))
    root = Path(out)
    encoder, tokenizer, collection, words = emlm_model(root)
    path = pretrain_emlm(emlm_spec(root, world_size), encoder, tokenizer, collection, words)
    assert path.is_dir(), f"rank {rank} returned before the artifact was published"
    (root / f"emlm_rank{rank}.txt").write_text(str(path))
    dist.barrier()
    dist.destroy_process_group()
