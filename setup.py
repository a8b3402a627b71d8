from setuptools import find_packages, setup

setup(
    name="worldmodels",
    version="0.1.0",
    description="World Models (Ha & Schmidhuber, 2018) on CarRacing in TensorFlow 2",
    packages=find_packages(include=["worldmodels", "worldmodels.*"]),
    python_requires=">=3.10",
    # TensorFlow comes in two wheels that must not be installed together: pick one with an
    # extra, `.[cpu]` (tensorflow-cpu, what CI and requirements.txt use) or `.[gpu]`.
    install_requires=[
        # LiteRT runs the VAE encoder in rollouts (control/agent.py: CompiledEncoder).
        "ai-edge-litert>=1.0",
        "gymnasium[box2d]>=1.0",
        "cma>=3.3",
        # FastCarRacing draws its polygons with a compiled port of pygame's (data/polygons.py).
        "numba>=0.60",
        "numpy>=1.26",
        "pillow>=10",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "tensorboard>=2.16",
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "test": ["pytest>=8", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29"],
        "notebooks": ["ipykernel>=6.29"],
        # --backend ray: rollouts on a Ray cluster ([default] brings the dashboard).
        "ray": ["ray[default]>=2.40"],
    },
    entry_points={
        "console_scripts": [
            "worldmodels-sample-policy=worldmodels.data.sample_policy:main",
            "worldmodels-train-vae=worldmodels.vision.train_vae:main",
            "worldmodels-latent-structure=worldmodels.vision.latent_structure:main",
            "worldmodels-sample-latent-stats=worldmodels.data.sample_latent_stats:main",
            "worldmodels-train-memory=worldmodels.memory.train_memory:main",
            "worldmodels-evaluate-memory=worldmodels.memory.evaluate_memory:main",
            "worldmodels-train-controller=worldmodels.control.train_controller:main",
            "worldmodels-evaluate=worldmodels.control.evaluate:main",
            "worldmodels-pipeline=worldmodels.pipeline:main",
            "worldmodels-render=worldmodels.control.render:main",
            "worldmodels-plots=worldmodels.plots:main",
            "worldmodels-pretrained=worldmodels.pretrained:main",
            "worldmodels-ship=worldmodels.ship:main",
        ]
    },
)
