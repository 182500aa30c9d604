"""CGC, PLE, DSelect-k and LTB against naive float64 implementations of their papers' equations, on given weights.

Each model is built on the ``mlp`` backbone (three linear-ReLU stages, so the
staged architectures have three levels) with linear heads, every parameter is
set from a seeded generator, and a reference written here from the equations
alone (one sample at a time, Python loops over experts, bits and parents,
weights read from the state dict by name) must give the same predictions.
"""

from __future__ import annotations

import math

import pytest
import torch

from mtlx_archs.archs.dselect_k import binary_codes, smooth_step

INPUT = (6,)
HIDDEN = [5, 4, 3]


@pytest.fixture
def tasks(benchmarks):
    return benchmarks["qm9"][1]  # three image-level regression tasks y0, y1, y2


def _model(make_model, tasks, arch, options=None, hidden=HIDDEN):
    model = make_model(
        arch, "mlp", "linear", INPUT, tasks, {"backbone": {"hidden_sizes": hidden}, "arch": options or {}}
    )
    model = model.double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * 0.6)
    return model, {k: v.detach() for k, v in model.state_dict().items()}


def _inputs(n=4):
    return torch.randn(n, *INPUT, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# -- the reference: one sample (a 1-D float64 vector) at a time -----------------------------------------------
def _linear(sd, name, v):
    w, b = sd[f"{name}.weight"], sd[f"{name}.bias"]
    return torch.stack([sum(w[i, j] * v[j] for j in range(len(v))) + b[i] for i in range(w.shape[0])])


def _stage(sd, backbone, k, v):
    """Stage k of the mlp backbone under ``backbone``: linear (after the flatten in stage 0), then ReLU."""
    out = _linear(sd, f"{backbone}.layers.{k}.{1 if k == 0 else 0}", v)
    return torch.where(out > 0, out, torch.zeros_like(out))


def _mlp(sd, backbone, v):
    for k in range(len(HIDDEN)):
        v = _stage(sd, backbone, k, v)
    return v


def _softmax(v):
    exps = [math.exp(float(a)) for a in v]
    return [e / sum(exps) for e in exps]


def _mixture(weights, outputs):
    total = weights[0] * outputs[0]
    for w, out in zip(weights[1:], outputs[1:], strict=True):
        total = total + w * out
    return total


def _head(sd, task, z):
    return _linear(sd, f"heads.{task}.body.fc", z)


def _per_sample(reference, x, tasks):
    rows = [reference(v) for v in x]
    return {t: torch.stack([row[t] for row in rows]) for t in tasks}


def _assert_matches(model, reference, tasks, x):
    with torch.no_grad():
        got = model(x)
    expected = _per_sample(reference, x, tasks)
    for t in tasks:
        torch.testing.assert_close(got[t], expected[t], rtol=1e-10, atol=1e-12)


# -- CGC --------------------------------------------------------------------------------------------------------
def test_cgc_gates_mix_shared_then_own_experts(make_model, tasks):
    model, sd = _model(make_model, tasks, "cgc", {"num_shared_experts": 2, "num_task_experts": 2})

    def reference(v):
        shared = [_mlp(sd, f"shared_experts.{s}", v) for s in range(2)]
        out = {}
        for t in tasks:
            experts = shared + [_mlp(sd, f"task_experts.{t}.{e}", v) for e in range(2)]
            out[t] = _head(sd, t, _mixture(_softmax(_linear(sd, f"gates.{t}", v)), experts))
        return out

    _assert_matches(model, reference, tasks, _inputs())


# -- PLE --------------------------------------------------------------------------------------------------------
def test_ple_follows_the_papers_shared_and_task_streams(make_model, tasks):
    model, sd = _model(make_model, tasks, "ple", {"num_shared_experts": 2, "num_task_experts": 1})
    names = list(tasks)

    def reference(v):
        shared_in, task_in = v, dict.fromkeys(names, v)
        for k in range(len(HIDDEN)):
            shared = [_stage(sd, f"shared_experts.{s}", k, shared_in) for s in range(2)]
            own = {t: [_stage(sd, f"task_experts.{t}.0", k, task_in[t])] for t in names}
            task_out = {
                t: _mixture(_softmax(_linear(sd, f"task_gates.{t}.{k}", task_in[t])), shared + own[t]) for t in names
            }
            if k < len(HIDDEN) - 1:  # the shared gate selects among all experts of the level
                everyone = shared + [e for t in names for e in own[t]]
                shared_in = _mixture(_softmax(_linear(sd, f"shared_gates.{k}", shared_in)), everyone)
            task_in = task_out
        return {t: _head(sd, t, task_in[t]) for t in names}

    assert len(model.shared_gates) == len(HIDDEN) - 1  # no shared gate after the last level
    _assert_matches(model, reference, tasks, _inputs())


# -- DSelect-k --------------------------------------------------------------------------------------------------
def _smooth_step(t, gamma):
    if t <= -gamma / 2:
        return 0.0
    if t >= gamma / 2:
        return 1.0
    return -2 / gamma**3 * t**3 + 3 / (2 * gamma) * t + 0.5


def test_smooth_step_and_codes_by_hand():
    got = smooth_step(torch.tensor([-5.0, -1.0, 0.0, 0.5, 1.0, 5.0], dtype=torch.float64), gamma=2.0)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, 0.5, 0.84375, 1.0, 1.0], dtype=torch.float64))
    assert binary_codes(4).int().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


@pytest.mark.parametrize("num_experts, k", [(4, 2), (8, 3)])
def test_dselect_k_selectors_follow_the_binary_encoding(make_model, tasks, num_experts, k):
    gamma = 2.0  # not 1, so that a step that ignores gamma fails
    model, sd = _model(make_model, tasks, "dselect-k", {"num_experts": num_experts, "num_nonzeros": k, "gamma": gamma})
    m = int(math.log2(num_experts))

    def reference(v):
        experts = [_mlp(sd, f"experts.{e}", v) for e in range(num_experts)]
        out = {}
        for t in tasks:
            z = _linear(sd, f"selector_logits.{t}", v)
            w = _softmax(_linear(sd, f"selector_weights.{t}", v))
            q = [0.0] * num_experts
            for i in range(k):
                steps = [_smooth_step(float(z[i * m + j]), gamma) for j in range(m)]
                for e in range(num_experts):
                    bits = format(e, f"0{m}b")
                    r = math.prod(steps[j] if bits[j] == "1" else 1 - steps[j] for j in range(m))
                    q[e] += w[i] * r
            assert math.isclose(sum(q), 1.0, rel_tol=1e-12)  # a distribution over the experts
            out[t] = _head(sd, t, _mixture(q, experts))
        return out

    x = _inputs()
    z = torch.stack([model.selector_logits[t](x) for t in tasks])
    assert bool((z.abs() < gamma / 2).any()) and bool((z.abs() > gamma / 2).any())  # both parts of the step
    _assert_matches(model, reference, tasks, x)


def test_dselect_k_initialises_as_the_official_code(make_model, tasks):
    model = make_model("dselect-k", "mlp", "linear", INPUT, tasks, {"arch": {"gamma": 3.0}})
    for p in model.selector_logits.parameters():
        assert float(p.detach().abs().max()) <= 0.03
    for p in model.selector_weights.parameters():
        assert float(p.detach().abs().max()) <= 0.05


@pytest.mark.parametrize("num_experts", [1, 3, 6])
def test_dselect_k_needs_a_power_of_two_experts(make_model, tasks, num_experts):
    with pytest.raises(ValueError, match=f"num_experts must be a power of two >= 2.*got {num_experts}"):
        make_model("dselect-k", "mlp", "linear", INPUT, tasks, {"arch": {"num_experts": num_experts}})


# -- LTB --------------------------------------------------------------------------------------------------------
def _ltb_reference(sd, names, child_input, hidden=HIDDEN):
    """``child_input(layer, child, parent_features)``: what task ``child``'s copy reads at ``layer`` > 0."""

    def reference(v):
        feats = [_stage(sd, f"branches.{t}", 0, v) for t in names]
        for i in range(1, len(hidden)):
            feats = [_stage(sd, f"branches.{t}", i, child_input(i, c, feats)) for c, t in enumerate(names)]
        return {t: _head(sd, t, feats[c]) for c, t in enumerate(names)}

    return reference


def test_ltb_evaluates_the_most_likely_tree(make_model, tasks):
    model, sd = _model(make_model, tasks, "ltb", {"tau": 1.0})
    alpha = sd["alpha"]
    assert alpha.shape == (len(HIDDEN) - 1, 3, 3)  # [child layer - 1, child, parent]

    def most_likely_parent(i, c, feats):
        row = alpha[i - 1, c].tolist()
        return feats[row.index(max(row))]

    _assert_matches(model.eval(), _ltb_reference(sd, list(tasks), most_likely_parent), tasks, _inputs())


def test_ltb_warm_up_sums_every_parent_and_the_schedule_is_libmtls(make_model, tasks):
    model, sd = _model(make_model, tasks, "ltb")
    reference = _ltb_reference(sd, list(tasks), lambda i, c, feats: _mixture([1.0, 1.0, 1.0], feats))
    assert model.temperature() is None  # epoch 0 of 1 until told otherwise: warm-up
    _assert_matches(model.train(), reference, tasks, _inputs())
    _assert_matches(model.eval(), reference, tasks, _inputs())
    # warm-up while epoch < epochs / 100, then tau = epochs / 20 / sqrt(epoch + 1)
    schedule = {(0, 100): None, (1, 100): 5 / math.sqrt(2), (99, 100): 0.5, (1, 200): None, (2, 200): 10 / math.sqrt(3)}
    for (epoch, epochs), tau in schedule.items():
        model.set_epoch(epoch, epochs)
        assert model.temperature() == (pytest.approx(tau) if tau else None), (epoch, epochs)
    fixed, _ = _model(make_model, tasks, "ltb", {"tau": 0.3})
    fixed.set_epoch(0, 100)
    assert fixed.temperature() == 0.3


def test_ltb_samples_each_parent_with_its_softmax_probability(make_model, tasks):
    """Gumbel-max: a hard sample picks parent p of child c with probability softmax(alpha[c])_p, at any tau."""
    hidden = HIDDEN[:2]  # one layer of choices: child c's prediction depends on its own choice only
    model, sd = _model(make_model, tasks, "ltb", {"tau": 0.5}, hidden=hidden)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25]], dtype=torch.float64)  # rows sum to 1
    with torch.no_grad():
        model.alpha.copy_(probs.log()[None])
    names, x = list(tasks), _inputs(1)
    candidates = {  # every child's prediction when every child reads parent p
        p: _per_sample(_ltb_reference(sd, names, lambda i, c, feats, p=p: feats[p], hidden), x, tasks) for p in range(3)
    }
    counts = torch.zeros(3, 3, dtype=torch.float64)
    torch.manual_seed(0)
    draws = 600
    model.train()
    for _ in range(draws):
        with torch.no_grad():
            out = model(x)
        for c, t in enumerate(names):
            (p,) = [p for p in range(3) if torch.allclose(out[t], candidates[p][t], rtol=1e-9, atol=1e-12)]
            counts[c, p] += 1
    expected = probs * draws
    assert bool(((counts - expected).abs() <= 5 * (expected * (1 - probs)).sqrt()).all()), counts
    model.zero_grad()
    sum(v.sum() for v in model(x).values()).backward()
    assert model.alpha.grad is not None and float(model.alpha.grad.abs().sum()) > 0  # the soft sample's gradient
