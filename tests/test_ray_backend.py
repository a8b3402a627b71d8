"""--backend ray: Ray actors as rollout workers, on a local Ray instance of 2 CPUs."""

import shutil
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from pool_handlers import BrokenAtStart, FailsOnce, Squarer

from worldmodels import layout
from worldmodels.control import evaluate, train_controller
from worldmodels.control.generations import load_optimizer, load_summary
from worldmodels.data import sample_policy
from worldmodels.data.tf_records import list_episodes
from worldmodels.workers import WorkerError, open_pool

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_instance(ray_to_itself):
    """One local instance for the module (commands join it instead of starting their own);
    its workers import the test handlers from this folder."""
    tests = str(Path(__file__).parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": tests}},
    )
    yield
    ray.shutdown()


def ray_pool(make_handler, num_workers=2, timeout=600.0):
    return open_pool("ray", make_handler, num_workers, timeout)


def test_results_come_back_in_order_once_each():
    seen = []
    with ray_pool(Squarer) as pool:
        results = pool.map([[1, 2], [3], [4, 5]], on_result=lambda i, r: seen.append(i))
    assert [[value for value, _, _ in job] for job in results] == [[1, 2], [3], [4, 5]]
    assert [[square for _, square, _ in job] for job in results] == [[1, 4], [9], [16, 25]]
    assert sorted(seen) == [0, 1, 2]


def test_a_killed_actor_and_a_hung_job_are_replaced_and_nothing_is_lost_or_counted_twice(
    tmp_path,
):
    jobs = [[1], ["hang"], [2], [3], [4], [5]]
    seen = []

    def kill_an_actor_once(index, result):
        if not seen:  # mid-map: the other actor is running a job or hung
            ray.kill(pool.actors[0], no_restart=False)
        seen.append(index)

    with ray_pool(partial(FailsOnce, str(tmp_path)), timeout=10.0) as pool:
        results = pool.map(jobs, on_result=kill_an_actor_once)
        assert pool.replaced == 1  # the hung one; Ray restarted the killed one itself
    assert results == [[1], [0], [4], [9], [16], [25]]
    assert sorted(seen) == list(range(len(jobs)))
    attempts = (tmp_path / "attempts").read_text().split()
    assert attempts.count("hang") == 2


def test_a_job_that_kills_its_actor_every_time_gives_up(tmp_path):
    with ray_pool(Squarer) as pool, pytest.raises(WorkerError, match="too many times"):
        pool.map([["die"]])


def test_handler_errors_and_unbuildable_workers_raise_worker_error():
    with ray_pool(Squarer) as pool, pytest.raises(WorkerError, match="a handler bug"):
        pool.map([[1], ["raise"]])
    with ray_pool(BrokenAtStart) as pool, pytest.raises(WorkerError, match="could not start"):
        pool.map([[1]])


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(WorkerError, match=r"pip install -e \"\.\[ray\]\""):
        open_pool("ray", Squarer, 1, 10.0)


def controller_flags(home, backend):
    return [
        "--home", str(home), "--generations", "2", "--popsize", "4",
        "--episodes-per-candidate", "2", "--episode-length", "30", "--num-process", "2",
        "--envs-per-worker", "2", "--eval-every", "1", "--eval-episodes", "2",
        "--backend", backend,
    ]  # fmt: skip


def test_controller_training_gives_the_same_rewards_and_optimizer_on_both_backends(
    agent_home, tmp_path
):
    homes = {}
    for backend in ("local", "ray"):
        homes[backend] = tmp_path / backend
        shutil.copytree(agent_home, homes[backend])
        train_controller.main(controller_flags(homes[backend], backend))
    for generation in (0, 1):
        local, remote = (load_summary(homes[b], generation) for b in ("local", "ray"))
        assert remote["evaluation"]["rewards"] == local["evaluation"]["rewards"]
        assert remote["mean_fitness"] == local["mean_fitness"]
        np.testing.assert_array_equal(
            *(np.load(layout.generation(homes[b], generation) / "rewards.npy") for b in homes)
        )
    local, remote = (load_optimizer(homes[b], 1) for b in ("local", "ray"))
    np.testing.assert_array_equal(remote.mean, local.mean)
    np.testing.assert_array_equal(remote.C, local.C)
    assert remote.sigma == local.sigma

    evaluate.main(
        ["--home", str(homes["ray"]), "--generation", "1", "--episodes", "2",
         "--episode-length", "30", "--num-process", "2", "--backend", "ray"]
    )  # fmt: skip
    assert (layout.evaluations(homes["ray"]) / "generation_1-mean.json").exists()


@pytest.mark.parametrize("policy", ["brownian", "controller"])
def test_sampling_on_ray_writes_the_local_backends_records_and_resumes(
    trained_controller_home, tmp_path, capsys, policy
):
    def sample(backend):
        flags = ["--home", str(homes[backend]), "--policy", policy, "--episodes", "3"]
        sample_policy.main(
            flags + ["--episode-length", "20", "--num-process", "2", "--backend", backend]
        )
        return list_episodes(layout.rollouts(homes[backend], policy))

    homes = {}
    for backend in ("local", "ray"):
        homes[backend] = tmp_path / backend
        shutil.copytree(trained_controller_home, homes[backend])
        shutil.rmtree(layout.rollouts(homes[backend], policy), ignore_errors=True)
    local, remote = sample("local"), sample("ray")
    assert [p.name for p in remote] == [p.name for p in local] and len(local) == 3
    assert [p.read_bytes() for p in remote] == [p.read_bytes() for p in local]
    assert not [p for p in remote[0].parent.iterdir() if p.name.startswith(".")]

    # Resuming samples only what is missing, alone in its job on either backend (a batch of
    # another size may round the encoder's last bit differently).
    for episodes in (local, remote):
        episodes[1].unlink()
    capsys.readouterr()
    sample("local"), sample("ray")
    out = capsys.readouterr().out
    assert out.count("wrote 1 ") == 2 and out.count("skipped 2 ") == 2
    assert remote[1].read_bytes() == local[1].read_bytes()


def test_the_example_cluster_config_passes_rays_own_validation():
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    path = Path(__file__).parents[1] / "scripts" / "ray-cluster-aws.yaml"
    config = prepare_config(yaml.safe_load(path.read_text()))
    validate_config(config)
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
