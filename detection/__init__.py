"""Object detection with a Self-KD backbone (Faster R-CNN on VOC, Tables 3 and 5): comes in a later issue."""
