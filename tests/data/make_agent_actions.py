"""Writes agent_actions.npy: the shipped agent's actions over one whole episode (track 5), so
the FastCarRacing identity tests replay a trained driver's steering, gas and braking.

    python tests/data/make_agent_actions.py
"""

import tempfile
from pathlib import Path

import numpy as np

from worldmodels.agent_archive import install_agent
from worldmodels.control.controller import controller_actions
from worldmodels.control.generations import controller_spec, load_agent_controller
from worldmodels.data.car_racing import make_env
from worldmodels.params import EnvParams
from worldmodels.seeds import latent_noise
from worldmodels.world_model import WorldModel

ROOT = Path(__file__).resolve().parents[2]
TRACK = 5


def main():
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        install_agent(str(ROOT / "pretrained" / "agent.tar.gz"), home)
        _, controller, latent = load_agent_controller(home, "best", "mean")
        spec = controller_spec(home)
        agent = WorldModel(home, with_memory=spec.uses_memory)
        env = make_env(EnvParams(env="stock"))
        observation, _ = env.reset(seed=TRACK)
        state, noise, actions, done = agent.initial_state(1), latent_noise(TRACK), [], False
        while not done:
            z = agent.codes(observation[None], [noise], latent)
            action = controller_actions(controller, z, state["features"], spec.actions)
            state = agent.memory_step(z, action, state)
            actions.append(np.asarray(action[0], np.float32))
            observation, _, terminated, truncated, _ = env.step(action[0])
            done = terminated or truncated
    out = Path(__file__).with_name("agent_actions.npy")
    np.save(out, np.stack(actions))
    print(f"wrote {len(actions)} actions of the shipped agent on track {TRACK} to {out}")


if __name__ == "__main__":
    main()
