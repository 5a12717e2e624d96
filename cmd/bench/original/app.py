"""The Python original forkwatch re-creates, for `make bench` to compare with.

A Flask app under uwsgi (five workers) whose middleware sends two DogStatsD
lines per request over UDP, at once, with one sendto() each (what datadog's
unbuffered DogStatsd client does; the datadog package is not in Debian):

  request_latency_seconds:<seconds>|h|#app_name:<APP_NAME>,endpoint:<path>
  request_count:1|c|#app_name:<APP_NAME>,method:<m>,endpoint:<path>,http_status:<code>

Same metric names and tag keys as forkwatch, so the project's mapping.yml and
the same PromQL serve both. Routes as forkwatch's demo: /test/ -> 200 "rest",
/test1/ -> 500 with the ZeroDivisionError's text, /test and /test1 -> 308/301
to the slash form (Flask's strict slashes), anything else -> 404.

Run (what cmd/bench does):
  STATSD_HOST=127.0.0.1 STATSD_PORT=9125 uwsgi --plugin python3 \
    --http-socket 127.0.0.1:5102 --master --processes 5 --wsgi-file app.py \
    --callable app --disable-logging
METRICS=0 turns the middleware off.
"""
import os
import socket
import time

from flask import Flask, request

STATSD = (os.environ.get("STATSD_HOST", "127.0.0.1"), int(os.environ.get("STATSD_PORT", "9125")))
APP_NAME = os.environ.get("APP_NAME", "original")

app = Flask(__name__)

# One UDP socket per worker process: uwsgi forks after loading the app.
_sock = {"pid": None, "sock": None}


def send(line):
    if _sock["pid"] != os.getpid():
        _sock["sock"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _sock["pid"] = os.getpid()
    try:
        _sock["sock"].sendto(line.encode(), STATSD)
    except OSError:
        pass  # metrics never fail a request


def before():
    request.started = time.time()


def after(response):
    elapsed = time.time() - request.started
    send("request_latency_seconds:%s|h|#app_name:%s,endpoint:%s" % (elapsed, APP_NAME, request.path))
    send("request_count:1|c|#app_name:%s,method:%s,endpoint:%s,http_status:%s"
         % (APP_NAME, request.method, request.path, response.status_code))
    return response


if os.environ.get("METRICS", "1") != "0":
    app.before_request(before)
    app.after_request(after)


@app.errorhandler(500)
def server_error(error):
    return str(getattr(error, "original_exception", None) or error), 500


@app.route("/test/")
def test():
    return "rest"


@app.route("/test1/")
def test1():
    return str(1 / 0)
