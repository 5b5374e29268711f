"""The SPD network: dilated ResNet trunk, segmentation, pose and DensePose branches."""
