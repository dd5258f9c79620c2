"""GradMag's promise on a real tiny LM: every loss moves the last block equally, at a loss's scale.

``approx_gradmag_preserve_mag`` returns ``sum_i a_i L_i`` with detached coefficients ``a_i``; the
test reads each ``a_i`` back as ``d total / d L_i`` (autograd) rather than recomputing it, then
checks the properties themselves on a 2-layer random ``LlamaForCausalLM``.
"""

import torch
import torch.nn.functional as F  # noqa: N812

from ctd.losses import approx_gradmag_preserve_mag


def tiny_llama_and_losses():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config).double()
    ids = torch.randint(0, 64, (2, 9))
    logits = model(input_ids=ids).logits  # (2, 9, 64)
    sft = F.cross_entropy(logits[:, :-1].reshape(-1, 64), ids[:, 1:].reshape(-1))
    teacher = torch.randn(2, 9, 64, dtype=torch.float64).log_softmax(-1)
    kl = F.kl_div(logits.log_softmax(-1), teacher, log_target=True, reduction="batchmean")
    z_loss = logits.logsumexp(-1).pow(2).mean()
    # three scales far apart: plain SFT, 100 x a KL, 0.01 x a z-loss
    return model, [sft, 100 * kl, 0.01 * z_loss]


def grad_norm(value, parameters):
    grads = torch.autograd.grad(value, parameters, retain_graph=True, allow_unused=True)
    return torch.cat([g.flatten() for g in grads if g is not None]).norm()


def test_each_loss_moves_the_last_block_equally_and_the_value_keeps_its_scale():
    from ctd.trainers._common import last_layer_parameters

    model, losses = tiny_llama_and_losses()
    last = last_layer_parameters(model)
    assert {id(p) for p in last} == {id(p) for p in model.model.layers[-1].parameters()}
    raw = torch.stack([grad_norm(loss, last) for loss in losses])
    assert raw.max() / raw.min() > 100  # the losses really pull with very different strengths

    total = approx_gradmag_preserve_mag(losses, last)
    coefficients = torch.autograd.grad(total, losses, retain_graph=True)  # a_i = d total / d L_i
    contributions = torch.stack(
        [grad_norm(a * loss, last) for a, loss in zip(coefficients, losses, strict=True)]
    )
    torch.testing.assert_close(contributions, contributions[0].expand(3), rtol=1e-5, atol=0)

    # preserve_mag: a convex combination, so the value stays on the losses' own scale
    a = torch.stack(coefficients)
    assert (a > 0).all()
    torch.testing.assert_close(a.sum(), torch.ones((), dtype=a.dtype), rtol=1e-6, atol=0)
    values = torch.stack([loss.detach() for loss in losses])
    assert values.min() <= total.detach() <= values.max()
    torch.testing.assert_close(total.detach(), (a * values).sum().to(total.dtype))
    # and no loss dominates the step: the combined last-block gradient is at most k x the smallest
    assert grad_norm(total, last) <= 3 * raw.min() * (1 + 1e-6)


def test_a_loss_without_last_block_gradient_gets_no_weight():
    from ctd.trainers._common import last_layer_parameters

    model, losses = tiny_llama_and_losses()
    last = last_layer_parameters(model)
    embedding_only = model.model.embed_tokens.weight.pow(2).sum()  # has a graph, not via the block
    total = approx_gradmag_preserve_mag([losses[0], embedding_only], last)
    weight_sft, weight_embedding = torch.autograd.grad(total, [losses[0], embedding_only])
    assert weight_embedding.item() == 0.0  # not tokenkit's 1 / eps, which would swamp the SFT loss
    torch.testing.assert_close(weight_sft, torch.ones_like(weight_sft), rtol=1e-6, atol=0)
    torch.testing.assert_close(total.detach(), losses[0].detach().to(total.dtype))
    detached = torch.tensor(1e3, dtype=torch.float64)  # no graph at all: weight 0 as well
    with_detached = approx_gradmag_preserve_mag([losses[0], detached], last)
    torch.testing.assert_close(with_detached.detach(), losses[0].detach().to(total.dtype))
    only_detached = approx_gradmag_preserve_mag([detached, 2 * detached], last)
    assert only_detached.item() == 3e3  # no loss has a gradient: the plain sum
