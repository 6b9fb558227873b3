"""The lecture's MNIST CNN, as the lecture writes it in Keras, on fastconv.

Only the imports differ from the Keras program. MNIST is read by
``fastconv.datasets.mnist.load_data()`` when its files are on this machine; otherwise
Fashion-MNIST (same shapes, 10 classes, harder) stands in for it. Prints the test
accuracy and saves the accuracy/val_accuracy plot (with matplotlib).

    python examples/lecture_mnist.py                 # 10 epochs on the full data
    python examples/lecture_mnist.py --sample --epochs 1   # seconds, offline
    python examples/lecture_mnist.py --limit 10000 --epochs 2
"""

from _common import load_mnist_or_fashion, parse_args, save_plot

from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import Sequential
from fastconv.utils import to_categorical

args = parse_args("The lecture's MNIST CNN on fastconv.", epochs=10, batch_size=32,
                  output="lecture_mnist_history.png")


# ---- the lecture's program ------------------------------------------------------------
(x_train, y_train), (x_test, y_test) = load_mnist_or_fashion(args.sample)
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]

x_train = x_train.reshape(x_train.shape[0], 28, 28, 1).astype("float32") / 255
x_test = x_test.reshape(x_test.shape[0], 28, 28, 1).astype("float32") / 255
y_train = to_categorical(y_train, 10)
y_test = to_categorical(y_test, 10)

model = Sequential()
model.add(Conv2D(32, kernel_size=3, activation="relu", input_shape=(28, 28, 1)))
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
