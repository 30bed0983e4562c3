"""The Arrow Room ray caster against hand-computed hits."""

import math

import torch

from gnm.data.raycast import ARROW, CUBE, CYLINDER, SPHERE, camera_rays, cast


def one(kind: int, o, v, pos=(0.0, 0.0), yaw=0.0, r=1.0):
    o = torch.tensor([[o]], dtype=torch.float32)
    v = torch.nn.functional.normalize(torch.tensor([[v]], dtype=torch.float32), dim=-1)
    t, k, n = cast(o, v, torch.tensor([[kind]]), torch.tensor([[pos]]), torch.tensor([[yaw]]),
                   torch.tensor([[r]]))
    return t.item(), k.item(), n[0, 0].tolist()


def close(a, b, tol=1e-4):
    return all(abs(x - y) < tol for x, y in zip(a, b, strict=True))


def test_sphere_from_the_side_and_above():
    t, k, n = one(SPHERE, (-5.0, 0.0, 1.0), (1.0, 0.0, 0.0))
    assert abs(t - 4.0) < 1e-4 and k == 0 and close(n, [-1, 0, 0])
    t, _, n = one(SPHERE, (0.0, 0.0, 10.0), (0.0, 0.0, -1.0), r=0.5)
    assert abs(t - 9.0) < 1e-4 and close(n, [0, 0, 1])
    assert one(SPHERE, (-5.0, 0.0, 2.5), (1.0, 0.0, 0.0))[1] == -1  # passes above


def test_cube_top_side_and_yaw():
    t, _, n = one(CUBE, (0.3, -0.2, 7.0), (0.0, 0.0, -1.0), pos=(0.0, 0.0), r=1.0)
    assert abs(t - 5.0) < 1e-4 and close(n, [0, 0, 1])
    t, _, n = one(CUBE, (-6.0, 0.0, 1.0), (1.0, 0.0, 0.0), pos=(0.0, 0.0), r=1.0)
    assert abs(t - 5.0) < 1e-4 and close(n, [-1, 0, 0])
    # yawed by 45°: the corner points at the ray, at distance sqrt(2) from the centre
    t, _, n = one(CUBE, (-6.0, 0.0, 1.0), (1.0, 0.0, 0.0), yaw=math.pi / 4, r=1.0)
    assert abs(t - (6.0 - math.sqrt(2))) < 1e-3


def test_cylinder_side_and_cap():
    t, _, n = one(CYLINDER, (2.0, -6.0, 0.5), (0.0, 1.0, 0.0), pos=(2.0, 0.0), r=0.5)
    assert abs(t - 5.5) < 1e-4 and close(n, [0, -1, 0])
    t, _, n = one(CYLINDER, (2.2, 0.1, 4.0), (0.0, 0.0, -1.0), pos=(2.0, 0.0), r=0.5)
    assert abs(t - 3.0) < 1e-4 and close(n, [0, 0, 1])
    assert one(CYLINDER, (2.6, 0.0, 4.0), (0.0, 0.0, -1.0), pos=(2.0, 0.0), r=0.5)[1] == -1


def test_arrow_head_tail_and_pointing():
    # top of the shaft at height 0.5 r; the head reaches x = 1.2 r, the tail x = -1.2 r
    t, _, n = one(ARROW, (-1.0, 0.0, 3.0), (0.0, 0.0, -1.0), r=1.0)
    assert abs(t - 2.5) < 1e-4 and close(n, [0, 0, 1])
    assert one(ARROW, (1.15, 0.0, 3.0), (0.0, 0.0, -1.0))[1] == 0  # near the tip
    assert one(ARROW, (1.0, 0.6, 3.0), (0.0, 0.0, -1.0))[1] == -1  # beside the tip's edge
    assert one(ARROW, (-1.0, 0.6, 3.0), (0.0, 0.0, -1.0))[1] == -1  # beside the shaft
    assert one(ARROW, (0.3, 0.6, 3.0), (0.0, 0.0, -1.0))[1] == 0  # the head's wide base
    # yawed by 90°: the tip now lies along +y
    assert one(ARROW, (0.0, 1.15, 3.0), (0.0, 0.0, -1.0), yaw=math.pi / 2)[1] == 0
    assert one(ARROW, (1.15, 0.0, 3.0), (0.0, 0.0, -1.0), yaw=math.pi / 2)[1] == -1
    # side face at the tail: normal -x
    t, _, n = one(ARROW, (-5.0, 0.0, 0.25), (1.0, 0.0, 0.0))
    assert abs(t - 3.8) < 1e-4 and close(n, [-1, 0, 0])


def test_nearest_of_several_objects_and_empty_slots():
    o = torch.tensor([[[-9.0, 0.0, 0.5]]])
    v = torch.tensor([[[1.0, 0.0, 0.0]]])
    kind = torch.tensor([[SPHERE, CUBE, -1]])
    pos = torch.tensor([[[3.0, 0.0], [-2.0, 0.0], [-6.0, 0.0]]])
    t, k, _ = cast(o, v, kind, pos, torch.zeros(1, 3), torch.full((1, 3), 0.5))
    assert k.item() == 1 and abs(t.item() - 6.5) < 1e-4


def test_camera_rays_centre_and_corners():
    eye = torch.tensor([[0.0, -10.0, 0.0]])
    o, d = camera_rays(eye, torch.zeros(1, 3), 90.0, 2)
    assert o.shape == d.shape == (1, 4, 3)
    # 2x2 pixels at 90° fov: centres at ±0.5 of the half-width tan(45°) = 1
    corners = [[-0.5, 1.0, 0.5], [0.5, 1.0, 0.5], [-0.5, 1.0, -0.5], [0.5, 1.0, -0.5]]
    want = torch.nn.functional.normalize(torch.tensor(corners), dim=-1)
    torch.testing.assert_close(d[0], want)


def test_project_inverts_the_camera_rays():
    from gnm.data.raycast import project

    eye = torch.tensor([[0.3, -7.5, 4.0]])
    look = torch.tensor([[0.1, 0.4, 0.0]])
    o, v = camera_rays(eye, look, 49.0, 16)
    # pixel (col 5, row 11) of a 16-px image: the ray through its centre, 6 units along
    p = o[0, 11 * 16 + 5] + 6.0 * v[0, 11 * 16 + 5]
    uv = project(p.view(1, 1, 3), eye, look, 49.0, 16)[0, 0]
    assert torch.allclose(uv, torch.tensor([5.5, 11.5]), atol=1e-4)
    # the look-at point is the image centre; a point above it is higher (smaller row)
    uv = project(torch.tensor([[[0.1, 0.4, 0.0], [0.1, 0.4, 1.0]]]), eye, look, 49.0, 16)[0]
    assert torch.allclose(uv[0], torch.tensor([8.0, 8.0]), atol=1e-4) and uv[1, 1] < 8.0
