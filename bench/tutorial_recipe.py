"""The TensorFlow image-classification tutorial's recipe, as our project first shipped it.

Run by ``bench/train_vs_tutorial.py`` in its own process. Faithful to the tutorial
(tensorflow.org/tutorials/images/classification, "basic" model without augmentation/dropout):
``image_dataset_from_directory`` at 180x180, batch 32, ``validation_split=0.2``, ``seed=123``,
``.cache().shuffle(1000).prefetch(AUTOTUNE)``, the 3-conv CNN with ``Rescaling(1./255)``, Adam,
``SparseCategoricalCrossentropy(from_logits=True)``, 10 epochs, then
``TFLiteConverter.from_keras_model``. Its inference divided pixels by 255 before a model that
rescales them again (the bug we started from); the exported accuracy is measured both that way
("as shipped") and with raw pixels (what the model was trained on).

Usage: ``python bench/tutorial_recipe.py DATA_DIR EPOCHS OUT_JSON``
"""

import json
import sys

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers
from tensorflow.keras.models import Sequential

data_dir, epochs, out_json = sys.argv[1], int(sys.argv[2]), sys.argv[3]
batch_size = 32
img_height = 180
img_width = 180

train_ds = tf.keras.utils.image_dataset_from_directory(
    data_dir, validation_split=0.2, subset="training", seed=123,
    image_size=(img_height, img_width), batch_size=batch_size)
val_ds = tf.keras.utils.image_dataset_from_directory(
    data_dir, validation_split=0.2, subset="validation", seed=123,
    image_size=(img_height, img_width), batch_size=batch_size)
class_names = train_ds.class_names

AUTOTUNE = tf.data.AUTOTUNE
train_ds = train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)
val_ds = val_ds.cache().prefetch(buffer_size=AUTOTUNE)

num_classes = len(class_names)
model = Sequential([
    layers.Rescaling(1. / 255, input_shape=(img_height, img_width, 3)),
    layers.Conv2D(16, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(),
    layers.Conv2D(32, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(),
    layers.Conv2D(64, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(128, activation="relu"),
    layers.Dense(num_classes),
])
model.compile(optimizer="adam",
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=2)

converter = tf.lite.TFLiteConverter.from_keras_model(model)
tflite_model = converter.convert()
interpreter = tf.lite.Interpreter(model_content=tflite_model)
interpreter.allocate_tensors()
input_index = interpreter.get_input_details()[0]["index"]
output_index = interpreter.get_output_details()[0]["index"]


def exported_accuracy(scale: float) -> float:
    """Accuracy of the .tflite on the validation set, feeding ``pixels * scale`` one at a time."""
    right = total = 0
    for images, labels in val_ds:
        for image, label in zip(images.numpy(), labels.numpy(), strict=True):
            img_array = tf.expand_dims(image * scale, 0)  # the shipped code: img_array / 255
            interpreter.set_tensor(input_index, img_array)
            interpreter.invoke()
            score = tf.nn.softmax(interpreter.get_tensor(output_index)[0])
            right += int(np.argmax(score) == label)
            total += 1
    return right / total


json.dump({
    "val_accuracy": float(history.history["val_accuracy"][-1]),
    "exported_accuracy_as_shipped": exported_accuracy(1 / 255),
    "exported_accuracy_raw_pixels": exported_accuracy(1.0),
    "epochs_run": len(history.history["loss"]),
}, open(out_json, "w"))
