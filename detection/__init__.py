"""Object detection with a Self-KD backbone (Tables 3 and 5): Faster R-CNN (torchvision, C4
ResNet) on PASCAL VOC. voc.py reads VOCdevkit, voc_eval.py computes VOC07 AP/mAP, backbone.py and
model.py load a classification/ checkpoint into the detector, synthetic.py writes a shapes set in
VOC layout. See detection/README.md."""
