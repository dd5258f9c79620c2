"""Main-path log-probs: brute-force references, memory-bounded vs plain parity, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from ctd.losses import (
    TokenLogprobs,
    token_logprobs,
    token_logprobs_from_hidden,
    token_logprobs_from_logits,
)

TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def brute_force(logits, input_ids, space_mask, eos_id):
    """Explicit loops over positions with Python floats."""
    batch, length, vocab = logits.shape
    main = torch.zeros(batch, length, dtype=torch.float64)
    space = torch.zeros(batch, length, dtype=torch.float64)
    eos = torch.zeros(batch, length, dtype=torch.float64)
    for b in range(batch):
        for t in range(length):
            row = [float(x) for x in logits[b, t]]
            top = max(row)
            probs = [math.exp(x - top) for x in row]
            total = sum(probs)
            space[b, t] = math.log(
                sum(p for p, s in zip(probs, space_mask, strict=True) if s) / total
            )
            eos[b, t] = math.log(probs[eos_id] / total)
            if t + 1 < length:
                main[b, t + 1] = math.log(probs[int(input_ids[b, t + 1])] / total)
    return main, space, eos


def test_plain_matches_brute_force_and_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11, dtype=torch.float64) * 3
    ids = torch.randint(0, 11, (3, 7))
    space_mask = torch.rand(11) < 0.4
    space_mask[0] = True
    out = token_logprobs_from_logits(logits, ids, space_token_mask=space_mask, eos_token_id=4)
    main, space, eos = brute_force(logits, ids, space_mask.tolist(), 4)
    torch.testing.assert_close(out.logprobs, main, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.space_logprobs, space, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.eos_logprobs, eos, atol=1e-10, rtol=0)
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1), reduction="none")
    torch.testing.assert_close(token_logprobs(logits, ids)[:, 1:], -ce.view(3, 6))
    assert token_logprobs(logits, ids)[:, 0].eq(0).all()


def _inputs(shape, dtype, width=5, seed=0):
    batch, length, vocab = shape
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, width, dtype=dtype, generator=gen)
    weight = torch.randn(vocab, width, dtype=dtype, generator=gen) / math.sqrt(width)
    bias = torch.randn(vocab, dtype=dtype, generator=gen)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    space_mask = torch.rand(vocab, generator=gen) < 0.3
    space_mask[1] = True
    return hidden, weight, bias, ids, space_mask


def _run(fn, hidden, weight, bias, ids, space_mask, softcap, upstream):
    leaves = [t.detach().clone().requires_grad_(True) for t in (hidden, weight, bias)]
    out = fn(*leaves, ids, space_mask, softcap)
    total = sum((o * g).sum() for o, g in zip(out, upstream, strict=True))
    grads = torch.autograd.grad(total, leaves)
    return [o.detach() for o in out], grads


def _chunked(chunk_size, max_kept_logits=None):
    def fn(hidden, weight, bias, ids, space_mask, softcap):
        return token_logprobs_from_hidden(
            hidden, weight, ids, lm_head_bias=bias, logit_softcap=softcap,
            space_token_mask=space_mask, eos_token_id=0, chunk_size=chunk_size,
            max_kept_logits=max_kept_logits,
        )  # fmt: skip

    return fn


def _plain(hidden, weight, bias, ids, space_mask, softcap):
    logits = hidden @ weight.T + bias  # (B, T, V)
    return token_logprobs_from_logits(
        logits, ids, logit_softcap=softcap, space_token_mask=space_mask, eos_token_id=0
    )


@pytest.mark.parametrize("shape", [(3, 7, 11), (1, 1, 3), (2, 9, 64), (4, 13, 257)])
@pytest.mark.parametrize("chunk_size", [1, 5, None])
@pytest.mark.parametrize("softcap", [None, 2.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("max_kept_logits", [0, None])  # recomputed in backward, or kept
def test_chunked_matches_plain(shape, chunk_size, softcap, dtype, max_kept_logits):
    inputs = _inputs(shape, dtype)
    upstream = [torch.randn(shape[:2], dtype=dtype) for _ in range(3)]
    values, grads = _run(_chunked(chunk_size, max_kept_logits), *inputs, softcap, upstream)
    ref_values, ref_grads = _run(_plain, *inputs, softcap, upstream)
    for got, want in zip([*values, *grads], [*ref_values, *ref_grads], strict=True):
        torch.testing.assert_close(got, want, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("max_kept_logits", [0, None])
def test_chunked_gradcheck_float64(max_kept_logits):
    hidden, weight, bias, ids, space_mask = _inputs((2, 4, 6), torch.float64)
    leaves = [t.requires_grad_(True) for t in (hidden, weight, bias)]

    def fn(h, w, b):
        out = token_logprobs_from_hidden(
            h, w, ids, lm_head_bias=b, logit_softcap=3.0, space_token_mask=space_mask,
            eos_token_id=2, chunk_size=3, max_kept_logits=max_kept_logits,
        )  # fmt: skip
        return out.logprobs, out.space_logprobs, out.eos_logprobs

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("max_kept_logits", [0, 8 * 11, None])  # 8 x 11 logits: exactly kept
def test_backward_twice_through_a_retained_graph(max_kept_logits):
    """GradMag's pattern: autograd.grad with retain_graph, then backward again on the same graph."""
    hidden, weight, bias, ids, space_mask = _inputs((2, 4, 11), torch.float64)
    leaves = [t.requires_grad_(True) for t in (hidden, weight, bias)]
    out = _chunked(3, max_kept_logits)(*leaves, ids, space_mask, 2.0)
    total = sum(o.square().sum() for o in out)
    first = torch.autograd.grad(total, leaves, retain_graph=True)
    second = torch.autograd.grad(total, leaves)
    _, reference = _run(_plain, hidden, weight, bias, ids, space_mask, 2.0, [2 * o for o in out])
    for a, b, want in zip(first, second, reference, strict=True):
        torch.testing.assert_close(a, want, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(b, want, atol=1e-10, rtol=1e-10)


def test_optional_outputs_are_none_and_type():
    hidden, weight, _, ids, _ = _inputs((2, 3, 7), torch.float32)
    out = token_logprobs_from_hidden(hidden, weight, ids)
    assert isinstance(out, TokenLogprobs)
    assert out.space_logprobs is None
    assert out.eos_logprobs is None
    assert out.logprobs.shape == (2, 3)


@pytest.mark.slow
def test_chunked_matches_plain_gpt2_vocab():
    shape = (2, 513, 50257)
    inputs = _inputs(shape, torch.float32, width=8)
    upstream = [torch.randn(shape[:2]) for _ in range(3)]
    values, grads = _run(_chunked(None), *inputs, None, upstream)
    ref_values, ref_grads = _run(_plain, *inputs, None, upstream)
    for got, want in zip([*values, *grads], [*ref_values, *ref_grads], strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_bad_input_names_tensor_and_shape():
    hidden, weight, _, ids, _ = _inputs((2, 3, 7), torch.float32)
    with pytest.raises(ValueError, match=r"input_ids must have shape \(2, 4\), got \(2, 3\)"):
        token_logprobs_from_hidden(hidden[:, :1].expand(2, 4, 5), weight, ids)
    with pytest.raises(ValueError, match=r"batch sizes differ: hidden has shape \(1, 3, 5\)"):
        token_logprobs_from_hidden(hidden[:1], weight, ids)
    with pytest.raises(ValueError, match=r"lm_head_weight must have shape \(\*, 5\)"):
        token_logprobs_from_hidden(hidden, weight[:, :4], ids)
    with pytest.raises(ValueError, match=r"input_ids \(shape \(2, 3\)\) has values in"):
        token_logprobs_from_hidden(hidden, weight, ids + 7)
    with pytest.raises(ValueError, match=r"hidden \(shape \(2, 3, 5\)\) contains NaN"):
        token_logprobs_from_hidden(hidden.clone().fill_(float("nan")), weight, ids)
    with pytest.raises(ValueError, match=r"logits must have 3 dimensions, got shape \(2, 3\)"):
        token_logprobs(ids.float(), ids)
    with pytest.raises(ValueError, match="eos_token_id=99"):
        token_logprobs_from_hidden(hidden, weight, ids, eos_token_id=99)
