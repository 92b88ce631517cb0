"""A tiny randomly initialised Qwen2 model, an in-process tokenizer and a GGUF of the same
weights, for training tests (no hub download; seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# A Qwen-style chat template (ChatML), as the embedded models use.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    'You keep a profile of a chatbot\'s user. {"profile": "none"} {"profile": "Likes tea"}',
    "I like thing 1. I love hiking on weekends and homemade pizza nights.",
    "Which of these responses suits me best? A. B. C. D. \\boxed{A} \\boxed{B} \\boxed{C}",
    "Previous memory: No previous memory. New conversation section: user assistant",
    "What you know about me from our past conversations: My request: question persona",
]


def make_tokenizer(folder: Path):  # noqa: ANN201
    """A byte-level BPE tokenizer trained in-process on a few sentences (any text encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(CORPUS * 5, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(folder))
    return tok


def make_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Write a tiny Qwen2ForCausalLM (2 layers, hidden 32) and its tokenizer to ``folder``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(folder)
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # larger random weights: distinct, confident outputs
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    model.save_pretrained(str(folder))
    return folder


def write_tiny_gguf(folder: Path, out: Path) -> Path:
    """The tiny model's weights as a float32 qwen2 GGUF llama.cpp can run (test-only converter)."""
    import json

    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((folder / "config.json").read_text())
    tok_json = json.loads((folder / "tokenizer.json").read_text())
    n_layers = cfg["num_hidden_layers"]
    w = gguf.GGUFWriter(str(out), "qwen2")
    w.add_name("tiny-qwen2")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(n_layers)
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(float(cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = tok_json["model"]["vocab"]
    added = {a["content"]: a["id"] for a in tok_json.get("added_tokens", [])}
    size = cfg["vocab_size"]
    tokens = [""] * size
    types = [gguf.TokenType.NORMAL] * size
    for t, i in {**vocab, **added}.items():
        tokens[i] = t
        if t in added:
            types[i] = gguf.TokenType.CONTROL
    for i in range(size):
        if not tokens[i]:
            tokens[i], types[i] = f"[PAD{i}]", gguf.TokenType.UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(added["<|im_end|>"])
    w.add_pad_token_id(added["<|endoftext|>"])
    w.add_bos_token_id(added["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, n_layers)
    for key, value in load_file(str(folder / "model.safetensors")).items():
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        assert name is not None, key  # e.g. blk.0.attn_q.weight (suffix kept by the map)
        w.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
