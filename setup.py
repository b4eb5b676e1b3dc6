"""Only what pyproject.toml cannot say: configs/ (beside train.py in a checkout) ships inside the
wheel as the package ``embedlab.configs``, so the console scripts find it after `pip install`.
A package_dir mapping rather than a copy or a symlink: the checkout keeps one configs/ folder."""

from setuptools import find_namespace_packages, setup

CODE = find_namespace_packages("src", include=["embedlab*", "hydra_plugins*"], exclude=["*__pycache__"])
CONFIGS = ["embedlab.configs"] + [f"embedlab.configs.{p}" for p in find_namespace_packages("configs")]

setup(
    packages=CODE + CONFIGS,
    package_dir={"": "src", "embedlab.configs": "configs"},
    package_data={"embedlab.configs": ["**/*.yaml"]},
)
