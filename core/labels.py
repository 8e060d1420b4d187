"""Class lists that a task and the reports both name: one definition each (the reports read
logs without importing a task, so the list lives here, beside nothing heavier than Python)."""

# PASCAL VOC's 20 object classes in the devkit's order (VOCdevkit, py-faster-rcnn's _classes
# without __background__): per-class AP keys ("ap.<class>") and detection labels 1..20.
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
