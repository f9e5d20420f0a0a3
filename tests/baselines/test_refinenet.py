"""The score networks of NCSN (CondRefineNet) and NCSNv2 (RefineNet): published sizes, the norms against hand
computations, exact levels and log-sigma interpolation, the 1 / sigma scaling, gradients and determinism."""

import math

import pytest
import torch

from genbench.baselines.refinenet import CondRefineNet, InstanceNormPlus, RefineNet

L = 5
SIGMAS = torch.exp(torch.linspace(math.log(1.0), math.log(0.01), L))  # NCSN's geometric levels, descending
NGF = 8


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def ncsn(ch=1, size=28, seed=0, **kw):
    torch.manual_seed(seed)
    return CondRefineNet(ch, size, NGF, SIGMAS, **kw)


def ncsnv2(ch=1, size=28, seed=0, **kw):
    torch.manual_seed(seed)
    return RefineNet(ch, size, NGF, **kw)


def images(ch=1, size=28, b=2, seed=1):
    return torch.rand(b, ch, size, size, generator=torch.Generator().manual_seed(seed))


def randomise_embeddings(net):
    """Distinct rows per level, so a wrong row or weight shows up."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, InstanceNormPlus):
                m.embed.weight.copy_(torch.randn(m.embed.weight.shape, generator=g))


def hand_norm(x, gamma, alpha, beta):
    """Instance norm per channel (biased variance), plus alpha times the channel means standardised over the
    channels (unbiased variance, as ermongroup's code), all scaled by gamma and shifted by beta."""
    mu = x.mean(dim=(2, 3), keepdim=True)
    h = (x - mu) / torch.sqrt(((x - mu) ** 2).mean(dim=(2, 3), keepdim=True) + 1e-5)
    m = mu.mean(dim=1, keepdim=True)
    std = torch.sqrt(((mu - m) ** 2).sum(dim=1, keepdim=True) / (x.shape[1] - 1) + 1e-5)
    return gamma[..., None, None] * (h + alpha[..., None, None] * (mu - m) / std) + beta[..., None, None]


@pytest.mark.parametrize("ch,size", [(1, 28), (3, 32)])
def test_output_shapes(ch, size):
    x, s = images(ch, size), SIGMAS[[0, 3]]
    with torch.no_grad():
        assert ncsn(ch, size)(x, s).shape == x.shape
        assert ncsnv2(ch, size)(x, s).shape == x.shape


def test_published_parameter_counts():
    """CIFAR-10 (3x32x32, ngf 128): the counts of ermongroup's CondRefineNetDilated (L = 10) and NCSNv2,
    instantiated from their code."""
    v1 = CondRefineNet(3, 32, 128, torch.exp(torch.linspace(0.0, math.log(0.01), 10)))
    v2 = RefineNet(3, 32, 128)
    assert sum(p.numel() for p in v1.parameters()) == 30_117_635
    assert sum(p.numel() for p in v2.parameters()) == 29_694_083


def test_cond_instance_norm_plus_matches_hand_computation():
    torch.manual_seed(0)
    norm = InstanceNormPlus(6, levels=3)
    with torch.no_grad():
        norm.embed.weight.normal_()
    x = torch.randn(2, 6, 5, 7) * 3 + torch.randn(2, 6, 1, 1)
    lo = torch.tensor([1, 2])
    gamma, alpha, beta = norm.embed.weight[lo].chunk(3, dim=1)
    out = norm(x, (lo, torch.zeros(2)))
    torch.testing.assert_close(out, hand_norm(x, gamma, alpha, beta), rtol=1e-5, atol=1e-5)


def test_instance_norm_plus_matches_hand_computation():
    torch.manual_seed(0)
    norm = InstanceNormPlus(6)
    with torch.no_grad():
        norm.beta.normal_()
    x = torch.randn(3, 6, 4, 4) * 2 + 1
    torch.testing.assert_close(norm(x), hand_norm(x, norm.gamma[None], norm.alpha[None], norm.beta[None]),
                               rtol=1e-5, atol=1e-5)


def test_levels_use_the_exact_embedding_at_each_sigma_i():
    net = ncsn()
    randomise_embeddings(net)
    norm = net.stages[0][0].norm1
    idx = torch.arange(L)
    for got, want in zip(norm.params(net.levels(SIGMAS)), norm.embed.weight[idx].chunk(3, dim=1)):
        assert torch.equal(got, want)
    x = images(b=L)
    with torch.no_grad():
        direct = net.backbone(x, (idx, torch.zeros(L)))  # row i, weight 0 on row i + 1
        assert torch.equal(net(x, SIGMAS), direct)


def test_levels_interpolate_linearly_in_log_sigma_and_clamp():
    net = ncsn()
    randomise_embeddings(net)
    norm = net.refine[2].crp.norms[1]
    t = torch.tensor([0.3, 0.75])
    i = torch.tensor([0, 2])
    sigma = torch.exp((1 - t) * SIGMAS[i].log() + t * SIGMAS[i + 1].log())
    lo, w = net.levels(sigma)
    assert torch.equal(lo, i)
    torch.testing.assert_close(w, t)
    table = norm.embed.weight.detach()
    want = (1 - t)[:, None] * table[i] + t[:, None] * table[i + 1]
    torch.testing.assert_close(torch.cat(norm.params((lo, w)), 1), want)
    beyond = torch.tensor([SIGMAS[0] * 3, SIGMAS[-1] / 3])            # above sigma_1, below sigma_L
    torch.testing.assert_close(torch.cat(norm.params(net.levels(beyond)), 1), table[[0, L - 1]])
    with torch.no_grad():
        x = images()
        torch.testing.assert_close(net(x, beyond), net(x, SIGMAS[[0, L - 1]]))


def test_ncsnv2_output_scales_as_one_over_sigma():
    net, x = ncsnv2(), images()
    with torch.no_grad():
        base = net(x, torch.ones(2))
        for s in (torch.tensor([0.01, 0.01]), torch.tensor([50.0, 0.3])):
            assert torch.equal(net(x, s), base / s[:, None, None, None])
        assert torch.equal(net(x, 0.5), base / 0.5)  # a scalar sigma is broadcast


@pytest.mark.parametrize("make", [ncsn, ncsnv2])
def test_gradients_reach_every_parameter(make):
    net = make()
    x = images().requires_grad_()
    out = net(x, SIGMAS[[1, 4]])
    out.square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad.abs().sum() > 0 for p in net.parameters())  # every layer takes part
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [ncsn, ncsnv2])
def test_deterministic_given_a_seed(make):
    a, b, x = make(seed=3), make(seed=3), images()
    for (k, u), (_, v) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(u, v), k
    with torch.no_grad():
        assert torch.equal(a(x, SIGMAS[[0, 2]]), b(x, SIGMAS[[0, 2]]))
    assert not torch.equal(make(seed=4).conv_in.weight, a.conv_in.weight)


def test_centered_inputs_skip_the_rescaling():
    net, x = ncsn(), images()
    centered = ncsn(centered=True)
    centered.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(centered(2 * x - 1, SIGMAS[[0, 1]]), net(x, SIGMAS[[0, 1]]))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        RefineNet(1, 27, NGF)
    with pytest.raises(ValueError, match="descending"):
        CondRefineNet(1, 28, NGF, SIGMAS.flip(0))


def test_pooling_and_refine_norms_follow_the_reference_code():
    """What the parameter counts cannot see: NCSN's CRP averages and normalises, NCSNv2's takes the max and has
    no norm in the refine blocks (ermongroup/ncsn CondCRPBlock; ermongroup/ncsnv2 CRPBlock, RefineBlock)."""
    v1, v2 = ncsn(), ncsnv2()
    assert all(isinstance(b.crp.pool, torch.nn.AvgPool2d) for b in v1.refine)
    assert all(isinstance(b.crp.pool, torch.nn.MaxPool2d) for b in v2.refine)
    assert not any(isinstance(m, InstanceNormPlus) for m in v2.refine.modules())
    assert all(isinstance(m, InstanceNormPlus) for b in v1.refine for m in b.crp.norms)
