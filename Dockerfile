# impasto as a CPU web service: `docker build -t impasto . && docker run -p 8000:8000 -e TOKEN=secret impasto`
# (the same image runs Ray heads and workers: see compose.yaml)
# (CUDA: start FROM an nvidia/cuda runtime image with Python 3.11 and install the CUDA build of
# torch instead of the pinned CPU one; see README, "Run it as a service").
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 impasto
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
COPY examples ./examples
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch \
 && pip install --no-cache-dir -e ".[serve,onnx,ray]"

USER impasto
ENV IMPASTO_HOME=/home/impasto/data
VOLUME ["/home/impasto/data"]
EXPOSE 8000
# a non-loopback address needs a token: pass it with -e TOKEN=...
CMD ["sh", "-c", "impasto serve --host 0.0.0.0 --port 8000 --token \"${TOKEN:?set TOKEN}\" --workers ${WORKERS:-1}"]
