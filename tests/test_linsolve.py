"""The FEM's linear solvers (vefrac/linsolve.py): multigrid-preconditioned CG against sparse LU on
the backend's own matrices, the hierarchy kept across changed operators, and the same crack
network from a whole run with either solver."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vefrac import fem, linsolve
from vefrac.config import load_scenario
from vefrac.runner import Run, build_problem

SQUARE = str(Path(__file__).resolve().parents[1] / "scenarios" / "square-mud.yaml")

# every staggered iteration global (fem.local_radius=0): these tests compare linear solves and their
# tolerances iteration by iteration, and which nodes a local iteration updates is a threshold on the
# φ change, so the last bits of a solve can move it; tests/test_fem_local.py compares the local
# iterations with the global scheme on this case
CRACKING = ["solver.backend=fem", "fem.points_per_length=1", "domain.size=[0.7, 0.7]", "solver.load_steps=5",
            "output.snapshots=2", "fem.local_radius=0"]


def cracked_systems(kind: str = "direct"):
    """A staggered solver after two load steps of a cracking mud square (cracks present), its
    u-step tangent at the current state, and the φ-step's matrix and load."""
    scn = load_scenario(SQUARE, CRACKING + [f"fem.linear_solver={kind}"])
    problem = build_problem(scn)
    h = fem.element_size(scn.fem, problem.domain, s=problem.physics.s, fracture=True)
    model = fem.FemModel(fem.build_mesh(problem.domain, h=h), fracture=True)
    solver = fem.Staggered(problem, scn.fem, model, counter=[0])
    for t in (0.03, 0.06):
        solver.solve_step(t)
    m = solver.mesh
    U, Phi = m.dofs(model.u.numpy()).ravel(), m.dofs(model.phi.numpy())
    eps_s = problem.rate * 0.06
    g = ((1 - Phi[m.elements] @ solver.N.T) ** 2 + problem.physics.k_res)
    _, residual, C = solver._u_terms(U, g, eps_s, tangent=True)
    K = solver.u_pattern.assemble(C.reshape(len(C), 36) @ solver.BB + solver.substrate.ravel())
    A, b = solver.phi_qp(U, eps_s)
    return solver, model, K, residual, A, b, Phi


def test_multigrid_cg_solves_the_cracked_tangent_and_keeps_its_hierarchy():
    solver, _, K, r, _, _, _ = cracked_systems()
    exact = linsolve.factor(K).solve(r)
    amg = linsolve.DisplacementSolver("amg", points=fem.dof_points(solver.mesh))
    x = amg.solve(K, r, atol=0.0)
    assert np.abs(x - exact).max() <= 1e-8 * np.abs(exact).max()
    assert amg.counts.setups == 1 and amg.counts.iterations < 40
    # a changed operator (more degradation in one band of elements): same hierarchy, still SPD
    K2 = K + sp.diags(np.linspace(0, 1e-3, K.shape[0]))
    x2 = amg.solve(K2, r, atol=0.0)
    assert np.abs(x2 - linsolve.factor(K2).solve(r)).max() <= 1e-8 * np.abs(exact).max()
    assert amg.counts.setups == 1
    M = amg._hierarchy.aspreconditioner()
    v, w = np.random.default_rng(0).standard_normal((2, K.shape[0]))
    assert v @ (M @ w) == pytest.approx(w @ (M @ v), rel=1e-10)  # CG needs a symmetric preconditioner


def test_the_box_qp_gives_the_same_damage_with_either_solver():
    _, _, _, _, A, b, Phi = cracked_systems()
    lb, ub = Phi, np.ones_like(Phi)
    direct, ok_d = fem.box_qp(A, b, lb, ub, Phi)
    krylov, ok_k = fem.box_qp(A, b, lb, ub, Phi, solve=linsolve.DamageSolver("amg").solve)
    assert ok_d and ok_k
    assert np.abs(krylov - direct).max() <= 1e-8
    assert (krylov >= lb).all() and (krylov <= 1).all()


def test_a_cracking_run_finds_the_same_network_with_either_solver(tmp_path):
    summaries = {}
    for kind in ("direct", "amg"):
        scn = load_scenario(SQUARE, CRACKING + [f"fem.linear_solver={kind}"])
        summaries[kind] = Run(scn, tmp_path / kind, device=torch.device("cpu"), log=lambda s: None,
                              pictures=False).execute()
    d, a = summaries["direct"]["final"], summaries["amg"]["final"]
    assert d["fragments"] == a["fragments"] and d["fragments"] >= 1
    assert a["skeleton_length"] == pytest.approx(d["skeleton_length"], rel=1e-3)
    assert a["crack_length"] == pytest.approx(d["crack_length"], rel=1e-4)
    its = [[s["iterations"] for s in summaries[k]["steps"]] for k in ("direct", "amg")]
    assert its[0] == its[1]  # the staggered scheme sees the same answers


def test_an_unknown_linear_solver_is_one_clear_error():
    from vefrac.errors import InputError

    with pytest.raises(InputError, match="linear_solver"):
        load_scenario(SQUARE, ["fem.linear_solver=cholesky"])


def test_inexact_mid_staggered_u_steps_find_the_same_network_for_fewer_krylov_iterations(tmp_path, monkeypatch):
    """Mid-iteration u-steps solved to a fraction of the φ change (fem.INEXACT) against every
    u-step to the full tolerance: the same staggered iterations and crack network, fewer CG
    iterations in the u-steps. Then at most fem.MID_NEWTON Newton steps for each of them: the
    same network again, for no more Newton iterations."""
    runs = {}
    variants = (("exact", 0.0, 0), ("inexact", fem.INEXACT, 0), ("capped", fem.INEXACT, fem.MID_NEWTON))
    for name, inexact, cap in variants:
        monkeypatch.setattr(fem, "INEXACT", inexact)
        monkeypatch.setattr(fem, "MID_NEWTON", cap)
        scn = load_scenario(SQUARE, CRACKING + ["fem.linear_solver=amg"])
        run = Run(scn, tmp_path / name, device=torch.device("cpu"), log=lambda s: None, pictures=False)
        summary = run.execute()
        runs[name] = (summary, run.trainer.u_solver.counts.iterations, sum(s["newton_iterations"] for s in summary["steps"]))
    (exact, exact_its, _), (inexact, inexact_its, inexact_newton), (capped, _, capped_newton) = runs.values()
    assert fem.INEXACT > 0 and fem.MID_NEWTON > 0
    assert inexact["final"]["fragments"] == exact["final"]["fragments"] >= 1
    assert inexact["final"]["skeleton_length"] == pytest.approx(exact["final"]["skeleton_length"], rel=1e-3)
    assert inexact["final"]["crack_length"] == pytest.approx(exact["final"]["crack_length"], rel=1e-4)
    assert [s["iterations"] for s in inexact["steps"]] == [s["iterations"] for s in exact["steps"]]
    assert inexact_its < 0.8 * exact_its
    assert capped["final"]["fragments"] == exact["final"]["fragments"]
    assert capped["final"]["skeleton_length"] == pytest.approx(exact["final"]["skeleton_length"], rel=1e-3)
    assert capped["final"]["crack_length"] == pytest.approx(exact["final"]["crack_length"], rel=1e-3)
    assert capped_newton <= inexact_newton  # this small case's mid-steps mostly take one step anyway


def test_a_capped_mid_staggered_u_step_returns_after_its_newton_steps_without_a_further_tangent():
    """u_step(max_newton=1, test_last=False): the same U as the one Newton step of max_newton=1,
    one residual-and-tangent evaluation fewer, reported as not converged; the cap on a converged
    start changes nothing."""
    solver, model, *_ = cracked_systems("amg")
    m = solver.mesh
    U, Phi = m.dofs(model.u.numpy()).ravel(), m.dofs(model.phi.numpy())
    eps_s = solver.shrinkage_at(0.075)  # more shrinkage than the state was solved for: out of equilibrium
    tangents = []
    terms = solver._u_terms

    def counted(*args, tangent):
        tangents.append(tangent)
        return terms(*args, tangent=tangent)

    solver._u_terms = counted
    runs = {}
    for test_last in (True, False):
        tangents.clear()
        solver.u_solver.new_step()  # the same start for CG both times (no previous answer, a fresh hierarchy)
        step = solver.u_step(U, Phi, eps_s, tolerance=fem.U_TOLERANCE, max_newton=1, test_last=test_last)
        runs[test_last] = step, tangents.count(True)
    (U_tested, its_tested, ok_tested), tangents_tested = runs[True]
    (U_capped, its_capped, ok_capped), tangents_capped = runs[False]
    assert its_tested == its_capped == 1 and not ok_capped  # not tested: not known to have converged
    assert tangents_capped == tangents_tested - 1 == 1
    assert np.array_equal(U_capped, U_tested) and not np.array_equal(U_capped, U)
    converged, _, ok = solver.u_step(U_capped, Phi, eps_s, tolerance=fem.U_TOLERANCE)
    assert ok
    tangents.clear()
    again, its, ok = solver.u_step(converged, Phi, eps_s, tolerance=fem.U_TOLERANCE, max_newton=1, test_last=False)
    assert ok and its == 0 and again is converged and tangents.count(True) == 1


def test_cg_stops_in_the_norm_asked_for_and_never_starts_worse_than_from_zero():
    """The u-solves' stopping test is the Newton loop's own (the largest nodal residual): on a
    cracked tangent it is met, and it takes fewer iterations than a Euclidean test of the same
    number; a start pointing away from the answer is scaled to zero, not taken as it is."""
    solver, _, K, r, *_ = cracked_systems()
    amg = linsolve.DisplacementSolver("amg", points=fem.dof_points(solver.mesh))
    amg.solve(K, r, atol=0.0)  # builds the hierarchy
    M = amg._hierarchy.aspreconditioner()
    exact = linsolve.factor(K).solve(r)
    fewer = 0
    for decades in range(6, 12):
        atol = 10.0**-decades * np.abs(r).max()

        def cg(x0, norm):
            x, its = linsolve.conjugate_gradients(K, r, x0, M=M, rtol=0.0, atol=atol, norm=norm)
            return norm(r - K @ x), its

        (res_max, its_max), (res_two, its_two) = cg(None, linsolve.max_norm), cg(None, np.linalg.norm)
        assert res_max <= atol and res_two <= atol
        assert its_max <= its_two
        fewer += its_two - its_max
        assert cg(-exact, linsolve.max_norm)[1] == its_max  # scaled to zero: as many iterations as from zero
        assert cg(0.5 * exact, linsolve.max_norm)[1] <= 1  # a multiple of the answer is scaled onto it
    assert fewer > 0


def test_a_staggered_iteration_evaluates_the_strain_at_each_displacement_once():
    """The fields at the Gauss points are kept for the last (U, εs): along a cracking load step they
    are computed about once per Newton trial, not for the trial, the energy, the φ-step and the next
    tangent each; and what is kept equals a fresh evaluation."""
    solver, model, *_ = cracked_systems("amg")
    computed = []
    at_points = solver._at_points

    def counted(U, elements=None):  # a local iteration's: its region's elements
        computed.append(U)
        return at_points(U, elements)

    solver._at_points = counted
    result = solver.solve_step(0.075)
    assert result.iterations > 5 and result.converged
    # without the memo: four a mid-staggered iteration (tangent, trial, energy, φ-step)
    assert len(computed) <= 1.2 * (1 + result.newton_iterations) and len(computed) < 2 * result.iterations
    U, eps_s, kept = solver._memo
    solver._memo = None
    fresh = solver._u_fields(U, eps_s)
    assert all(np.array_equal(a, b) for a, b in zip((kept[0], *kept[1], *kept[2:]), (fresh[0], *fresh[1], *fresh[2:])))
