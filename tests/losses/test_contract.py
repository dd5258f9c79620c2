"""The contract every loss in ``ctd.losses.LOSSES`` keeps, checked on every registered name.

A harness in the manner of torchmetrics' ``MetricTester`` and Liger's loss tests: one case factory
per registry name builds valid float64 inputs of a given size, and the same checks run on all of
them. Values are checked against references elsewhere (``test_alm.py``, ``test_baselines.py``,
...); here the references are independent of each loss's formula: float64 finite differences
(``gradcheck``), the loss's own float64 value on the same rounded inputs (dtype table), exact zeros
(identity, all-masked) and the invariance to the order of the batch rows.

A loss added to ``LOSSES`` without a case here fails ``test_every_registered_loss_has_a_case``
and every parametrised check.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
import torch
from torch import Tensor, nn

from ctd.losses import (
    LOSSES,
    DSKDSide,
    alm_latents_loss,
    alm_loss,
    dskd_loss,
    forward_kl_loss,
    generalized_jsd_loss,
    mined_loss,
    reverse_kl_loss,
    sft_loss,
    tvd_loss,
    tvdpp_loss,
    uld_loss,
)


class Sizes(NamedTuple):
    batch: int
    length: int  # the student's sequence length; teacher sides are longer where they may be
    vocab: int  # the student's vocabulary (or hidden width for ALM latents)


@dataclass(frozen=True)
class Case:
    """Constructor keywords for ``LOSSES[name]`` and ``forward`` keywords (float64)."""

    module_kwargs: dict[str, Any]
    inputs: dict[str, Tensor]


Factory = Callable[[Sizes, torch.Generator, bool, bool], Case]  # (sizes, gen, identical, masked)


def call_by_keyword(module: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    out: Tensor = module(**inputs)
    return out


@dataclass(frozen=True)
class Spec:
    """How to build and call one registered loss, and which checks apply to it."""

    make: Factory
    function: Callable[..., Tensor]  # the pure function behind the module (signature check)
    grad_inputs: tuple[str, ...]  # float inputs that receive gradients
    identity: str  # "zero", "stationary" (student gradient 0 only) or why it does not apply
    forward: Callable[[nn.Module, dict[str, Tensor]], Tensor] = call_by_keyword
    unbatched: tuple[str, ...] = ()  # inputs without a batch axis (embedding tables)
    gradcheck_kwargs: dict[str, Any] = field(default_factory=dict)  # module overrides
    one_model: bool = False  # a loss on the student alone (no teacher argument)
    extra_positional: tuple[str, ...] = ()  # further positional arguments of the function


# --- input builders ------------------------------------------------------------------------------


def random_chunk_index(gen: torch.Generator, batch: int, length: int, chunks: int) -> Tensor:
    """Contiguous chunks 0..chunks-1 over positions 1.., position 0 in none; (B, T) long."""
    rows = []
    for _ in range(batch):
        cuts = torch.randperm(length - 2, generator=gen)[: chunks - 1].add(2).sort().values
        bounds = [1, *cuts.tolist(), length]
        row = [-1] * length
        for chunk, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            row[lo:hi] = [chunk] * (hi - lo)
        rows.append(row)
    return torch.tensor(rows)


def random_logprobs(gen: torch.Generator, batch: int, length: int) -> Tensor:
    values = -torch.rand(batch, length, generator=gen, dtype=torch.float64) * 3 - 0.01
    values[:, 0] = 0.0  # position 0 has no log-prob
    return values


def random_mask(gen: torch.Generator, batch: int, length: int, masked: bool) -> Tensor:
    if masked:
        return torch.zeros(batch, length, dtype=torch.bool)
    return torch.rand(batch, length, generator=gen) > 0.2


def randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def num_chunks(sizes: Sizes) -> int:
    return max(1, (sizes.length - 1) // 2)


# --- one factory per registered name ------------------------------------------------------------


def make_alm(sizes: Sizes, gen: torch.Generator, identical: bool, masked: bool) -> Case:
    batch, length, _ = sizes
    teacher_length = length if identical else length + 2
    student = random_logprobs(gen, batch, length)
    student_index = random_chunk_index(gen, batch, length, num_chunks(sizes))
    student_mask = random_mask(gen, batch, length, masked)
    if identical:
        teacher, teacher_index = student.clone(), student_index.clone()
        teacher_mask = student_mask.clone()
    else:
        teacher = random_logprobs(gen, batch, teacher_length)
        teacher_index = random_chunk_index(gen, batch, teacher_length, num_chunks(sizes))
        teacher_mask = random_mask(gen, batch, teacher_length, masked)
    inputs = {
        "student_logprobs": student,
        "teacher_logprobs": teacher,
        "student_chunk_index": student_index,
        "teacher_chunk_index": teacher_index,
        "student_mask": student_mask,
        "teacher_mask": teacher_mask,
    }
    return Case({"temperature": 5.0}, inputs)


def make_alm_latents(sizes: Sizes, gen: torch.Generator, identical: bool, masked: bool) -> Case:
    batch, length, width = sizes
    teacher_length = length if identical else length + 2
    student = randn(gen, batch, length, width)
    student_index = random_chunk_index(gen, batch, length, num_chunks(sizes))
    if identical:
        teacher, teacher_index = student.clone(), student_index.clone()
    else:
        teacher = randn(gen, batch, teacher_length, width)
        teacher_index = random_chunk_index(gen, batch, teacher_length, num_chunks(sizes))
    if masked:  # no mask argument: a batch without chunks is the all-masked case
        student_index, teacher_index = student_index.fill_(-1), teacher_index.fill_(-1)
    inputs = {
        "student_hidden_states": student,
        "teacher_hidden_states": teacher,
        "student_chunk_index": student_index,
        "teacher_chunk_index": teacher_index,
    }
    return Case({}, inputs)


def make_sft(sizes: Sizes, gen: torch.Generator, identical: bool, masked: bool) -> Case:
    batch, length, _ = sizes
    inputs = {
        "logprobs": random_logprobs(gen, batch, length),
        "mask": random_mask(gen, batch, length, masked),
    }
    return Case({}, inputs)


def make_shared_vocab(student_name: str, teacher_name: str) -> Factory:
    def make(sizes: Sizes, gen: torch.Generator, identical: bool, masked: bool) -> Case:
        student = randn(gen, *sizes)
        teacher = student.clone() if identical else 2 * randn(gen, *sizes)
        inputs = {
            student_name: student,
            teacher_name: teacher,
            "mask": random_mask(gen, sizes.batch, sizes.length, masked),
        }
        return Case({}, inputs)

    return make


def make_uld(sizes: Sizes, gen: torch.Generator, identical: bool, masked: bool) -> Case:
    batch, length, vocab = sizes
    student = randn(gen, batch, length, vocab)
    student_mask = random_mask(gen, batch, length, masked)
    if identical:
        teacher, teacher_mask = student.clone(), student_mask.clone()
    else:
        teacher = randn(gen, batch, length + 1, vocab + 2)
        teacher_mask = random_mask(gen, batch, length + 1, masked)
    inputs = {
        "student_logits": student,
        "teacher_logits": teacher,
        "student_mask": student_mask,
        "teacher_mask": teacher_mask,
    }
    return Case({}, inputs)


DSKD_WIDTHS = {"student": 4, "teacher": 6}


def make_dskd(sizes: Sizes, gen: torch.Generator, identical: bool, masked: bool) -> Case:
    batch, length, vocab = sizes
    inputs: dict[str, Tensor] = {}
    for side, (side_length, side_vocab) in {
        "student": (length, vocab),
        "teacher": (length + 1, vocab + 2),
    }.items():
        width = DSKD_WIDTHS[side]
        embeddings = randn(gen, side_vocab, width)
        hidden = randn(gen, batch, side_length, width)
        inputs |= {
            f"{side}_logits": hidden @ embeddings.T,
            f"{side}_hidden": hidden,
            f"{side}_input_ids": torch.randint(0, side_vocab, (batch, side_length), generator=gen),
            f"{side}_input_embeddings": embeddings,
            f"{side}_output_embeddings": embeddings.clone(),
            f"{side}_mask": random_mask(gen, batch, side_length, masked),
        }
    torch.manual_seed(0)  # the projectors' initialisation
    return Case(
        {"student_dim": DSKD_WIDTHS["student"], "teacher_dim": DSKD_WIDTHS["teacher"]}, inputs
    )


def call_dskd(module: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    sides = [
        DSKDSide(**{key: inputs[f"{side}_{key}"] for key in DSKDSide._fields})
        for side in ("student", "teacher")
    ]
    out: Tensor = module(*sides)
    return out


def make_mined(sizes: Sizes, gen: torch.Generator, identical: bool, masked: bool) -> Case:
    batch, length, vocab = sizes
    student = randn(gen, batch, length, vocab)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    student_mask = random_mask(gen, batch, length, masked)
    if identical:  # one token per chunk on both sides: every scored token is a 1:1 KL term
        index = (torch.arange(length) - 1).expand(batch, length).clone()
        inputs = {
            "student_logits": student,
            "teacher_logits": student.clone(),
            "student_input_ids": ids,
            "student_chunk_index": index,
            "teacher_chunk_index": index.clone(),
            "student_mask": student_mask,
            "teacher_mask": student_mask.clone(),
        }
        return Case({"student_to_teacher": torch.arange(vocab)}, inputs)
    teacher_length, teacher_vocab = length + 1, vocab + 2
    inputs = {
        "student_logits": student,
        "teacher_logits": randn(gen, batch, teacher_length, teacher_vocab),
        "student_input_ids": ids,
        "student_chunk_index": random_chunk_index(gen, batch, length, num_chunks(sizes)),
        "teacher_chunk_index": random_chunk_index(gen, batch, teacher_length, num_chunks(sizes)),
        "student_mask": student_mask,
        "teacher_mask": random_mask(gen, batch, teacher_length, masked),
    }
    mapping = torch.randint(0, teacher_vocab, (vocab,), generator=gen)
    return Case({"student_to_teacher": mapping}, inputs)


SPECS: dict[str, Spec] = {
    "alm": Spec(
        make_alm,
        alm_loss,
        ("student_logprobs", "teacher_logprobs"),
        identity="stationary",  # binary_ce (default) = binary KL + the teacher's binary entropy
    ),
    "alm_latents": Spec(
        make_alm_latents,
        alm_latents_loss,
        # the teacher's scale normaliser is detached by design, so only the student's gradient
        # is the derivative of the value
        ("student_hidden_states",),
        identity="zero",
    ),
    "sft": Spec(make_sft, sft_loss, ("logprobs",), identity="n/a: one model only", one_model=True),
    "kl": Spec(
        make_shared_vocab("student_logits", "teacher_logits"),
        forward_kl_loss,
        ("student_logits", "teacher_logits"),
        identity="zero",
    ),
    "reverse_kl": Spec(
        make_shared_vocab("student_logits", "teacher_logits"),
        reverse_kl_loss,
        ("student_logits", "teacher_logits"),
        identity="zero",
    ),
    "jsd": Spec(
        make_shared_vocab("student_logits", "teacher_logits"),
        generalized_jsd_loss,
        ("student_logits", "teacher_logits"),
        identity="zero",
    ),
    "tvd": Spec(
        make_shared_vocab("student_logits", "teacher_logits"),
        tvd_loss,
        ("student_logits", "teacher_logits"),
        identity="zero",
    ),
    "uld": Spec(make_uld, uld_loss, ("student_logits", "teacher_logits"), identity="zero"),
    "dskd": Spec(
        make_dskd,
        dskd_loss,
        # DSKD detaches t2s inside its KD term, so the query side's gradient (student input
        # embeddings) is not the value's derivative; the teacher side is detached throughout
        ("student_logits", "student_hidden"),
        identity="n/a: learned projectors map the teacher, so t2s != student at identity",
        forward=call_dskd,
        unbatched=tuple(
            f"{side}_{kind}_embeddings"
            for side in ("student", "teacher")
            for kind in ("input", "output")
        ),
        extra_positional=("projections",),
    ),
    "mined": Spec(make_mined, mined_loss, ("student_logits", "teacher_logits"), identity="zero"),
    "tvdpp": Spec(
        make_shared_vocab("draft_logits", "target_logits"),
        tvdpp_loss,
        ("draft_logits",),  # the target is detached
        identity="zero",
        # the value is the TVD and the gradient the normalised surrogate's; only "none" makes
        # them one function (the other readings are checked in test_tvdpp*.py)
        gradcheck_kwargs={"normalization": "none"},
    ),
}

NAMES = sorted(LOSSES)
TINY, ODD = Sizes(2, 4, 3), Sizes(3, 7, 11)


def spec_of(name: str) -> Spec:
    if name not in SPECS:
        pytest.fail(f"loss {name!r} is in LOSSES but has no case in tests/losses/test_contract.py")
    return SPECS[name]


def build(
    name: str,
    sizes: Sizes,
    *,
    identical: bool = False,
    masked: bool = False,
    seed: int = 0,
    **overrides: Any,
) -> tuple[Spec, nn.Module, dict[str, Tensor]]:
    spec = spec_of(name)
    case = spec.make(sizes, torch.Generator().manual_seed(seed), identical, masked)
    module = LOSSES[name](**(case.module_kwargs | overrides)).double()
    return spec, module, case.inputs


def with_grad(spec: Spec, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        key: value.detach().clone().requires_grad_(key in spec.grad_inputs)
        for key, value in inputs.items()
    }


def gradients(loss: Tensor, inputs: dict[str, Tensor], names: tuple[str, ...]) -> list[Tensor]:
    leaves = [inputs[name] for name in names]
    if not loss.requires_grad:
        return [torch.zeros_like(leaf) for leaf in leaves]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [
        torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads, strict=True)
    ]


# --- the contract --------------------------------------------------------------------------------


def test_every_registered_loss_has_a_case() -> None:
    assert set(SPECS) == set(LOSSES), "add a case to SPECS for every LOSSES entry (and only those)"


def _check_order(where: str, signature: inspect.Signature, spec: Spec) -> None:
    params = [p for p in signature.parameters.values() if p.name != "self"]
    positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    sides = [name for name in positional if name not in ("mask", *spec.extra_positional)]
    if spec.one_model:
        assert len(sides) == 1, f"{where}: one-model loss with positional {positional}"
    else:
        assert len(sides) == 2, f"{where}: positional {positional}, want (student, teacher)"
        assert sides[0].startswith(("student", "draft")), f"{where}: first is {sides[0]!r}"
        assert sides[1].startswith(("teacher", "target")), f"{where}: second is {sides[1]!r}"
    assert positional[: len(sides)] == sides, f"{where}: the sides must come first: {positional}"


@pytest.mark.parametrize("name", NAMES)
def test_student_first_teacher_second_and_sided_arguments_keyword_only(name: str) -> None:
    spec, module, _ = build(name, TINY)
    _check_order(f"{name} forward", inspect.signature(type(module).forward), spec)
    _check_order(spec.function.__name__, inspect.signature(spec.function), spec)
    init = inspect.signature(type(module).__init__).parameters.values()
    named = [
        p for p in init if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert all(p.kind is p.KEYWORD_ONLY for p in named), f"{name}: hyperparameters keyword-only"


@pytest.mark.parametrize("name", NAMES)
def test_identity_gives_zero_with_zero_student_gradient(name: str) -> None:
    spec = spec_of(name)
    if spec.identity not in ("zero", "stationary"):
        pytest.skip(f"{name}: identity {spec.identity}")
    _, module, inputs = build(name, TINY, identical=True)
    inputs = with_grad(spec, inputs)
    loss = spec.forward(module, inputs)
    if spec.identity == "zero":
        assert loss.item() == pytest.approx(0.0, abs=1e-12)
    student_side = tuple(n for n in spec.grad_inputs if n.startswith(("student", "draft")))
    for grad in gradients(loss, inputs, student_side):
        assert grad.abs().max().item() < 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name: str) -> None:
    spec, module, inputs = build(name, TINY, **spec_of(name).gradcheck_kwargs)
    fixed = {k: v for k, v in inputs.items() if k not in spec.grad_inputs}

    def fn(*leaves: Tensor) -> Tensor:
        return spec.forward(module, fixed | dict(zip(spec.grad_inputs, leaves, strict=True)))

    leaves = tuple(inputs[n].clone().requires_grad_(True) for n in spec.grad_inputs)
    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("name", NAMES)
def test_all_masked_gives_finite_zero_with_zero_gradients(name: str) -> None:
    spec, module, inputs = build(name, TINY, masked=True)
    inputs = with_grad(spec, inputs)
    loss = spec.forward(module, inputs)
    assert loss.shape == ()
    assert loss.item() == 0.0
    for grad in gradients(loss, inputs, spec.grad_inputs):
        assert torch.isfinite(grad).all()
        assert grad.eq(0).all()


@pytest.mark.parametrize("name", NAMES)
def test_odd_shape_is_finite_and_independent_of_row_order(name: str) -> None:
    spec, module, inputs = build(name, ODD, seed=1)
    inputs = with_grad(spec, inputs)
    loss = spec.forward(module, inputs)
    assert loss.shape == ()
    assert torch.isfinite(loss)
    for name_, grad in zip(
        spec.grad_inputs, gradients(loss, inputs, spec.grad_inputs), strict=True
    ):
        assert grad.shape == inputs[name_].shape
        assert torch.isfinite(grad).all()
    order = torch.tensor([2, 0, 1])
    permuted = {k: v if k in spec.unbatched else v[order] for k, v in inputs.items()}
    torch.testing.assert_close(spec.forward(module, permuted), loss, rtol=1e-12, atol=1e-12)


# rtol, atol of the value in a low-precision dtype against float64 on the same rounded inputs.
# The losses reduce half-precision inputs in float32, so all dtypes get float32's tolerance
# (worst relative error measured over 5 seeds: 2e-7). DSKD is the exception: its learned
# projectors and cross-attention run in the input dtype (worst 9e-4 in float16, 8e-2 in bfloat16).
TOLERANCES = {
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-5, 1e-6),
    torch.bfloat16: (1e-5, 1e-6),
}
TOLERANCE_OVERRIDES = {
    ("dskd", torch.float16): (5e-3, 1e-4),
    ("dskd", torch.bfloat16): (0.15, 1e-3),
}


@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_value_within_dtype_tolerance(name: str, dtype: torch.dtype) -> None:
    spec, module, inputs = build(name, Sizes(2, 6, 10), seed=2)
    low = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    module = module.to(dtype)
    reference = copy.deepcopy(module).double()
    rounded = {k: v.double() if v.is_floating_point() else v for k, v in low.items()}
    want = spec.forward(reference, rounded)
    got = spec.forward(module, low)
    assert torch.isfinite(got)
    rtol, atol = TOLERANCE_OVERRIDES.get((name, dtype), TOLERANCES[dtype])
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)
