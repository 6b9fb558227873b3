"""The lecture's two-conv CNN for MNIST, as written in Keras, on fastconv.

Conv2D(32, 3, relu) -> Conv2D(64, 3, relu) -> MaxPooling2D(2) -> Dropout(0.25) ->
Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax): the classic Keras
MNIST CNN (about 0.99 test accuracy on MNIST after 12 epochs), one convolution deeper
than ``lecture_mnist.py``. Only the imports differ from the Keras program. MNIST is read by
``fastconv.datasets.mnist.load_data()`` when its files are on this machine; otherwise
Fashion-MNIST (same shapes, 10 classes, harder) stands in for it. Prints the test
accuracy and saves the accuracy/val_accuracy plot (with matplotlib).

    python examples/lecture_two_conv.py                 # 12 epochs on the full data
    python examples/lecture_two_conv.py --sample --epochs 1   # seconds, offline
    python examples/lecture_two_conv.py --limit 10000 --epochs 2
"""

from _common import load_mnist_or_fashion, parse_args, save_plot

from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import Sequential
from fastconv.utils import to_categorical

args = parse_args("The lecture's two-conv CNN on fastconv.", epochs=12, batch_size=128,
                  output="lecture_two_conv_history.png")


# ---- the lecture's program ------------------------------------------------------------
(x_train, y_train), (x_test, y_test) = load_mnist_or_fashion(args.sample)
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]

x_train = x_train.reshape(x_train.shape[0], 28, 28, 1).astype("float32") / 255
x_test = x_test.reshape(x_test.shape[0], 28, 28, 1).astype("float32") / 255
y_train = to_categorical(y_train, 10)
y_test = to_categorical(y_test, 10)

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)))
model.add(Conv2D(64, (3, 3), activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(128, activation="relu"))
model.add(Dropout(0.5))
model.add(Dense(10, activation="softmax"))

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.summary()

history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                    verbose=2, validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", round(float(score[0]), 4))
print("Test accuracy:", round(float(score[1]), 4))

if args.output:
    save_plot(history, args.output)
