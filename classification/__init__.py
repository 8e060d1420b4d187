"""Image classification with Self-KD: CIFAR, ImageNet, the paper's model zoo (Tables 1-2)."""
