"""Drives fnhost's SCF-compatible API with the official Tencent Cloud SDK
(`tencentcloud-sdk-python-scf`, unmodified) and prints what it saw as one
JSON document on stdout; tests/tests/e2e/scf.rs asserts on it.

Usage: drive.py --endpoint 127.0.0.1:PORT --secret-id ID --secret-key KEY
                --admin-key KEY

The host must serve the sample app of tests/src/lib.rs (`echo`, `sleep`,
`log`, `fail`, ...). The admin key is used only to wait until an event is
really running (the SCF surface shows queued events as RUNNING too).
"""

import argparse
import json
import sys
import time
import urllib.request

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

WAIT_SECS = 30


def client(endpoint, secret_id, secret_key):
    http = HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=60)
    return scf_client.ScfClient(
        credential.Credential(secret_id, secret_key), "", ClientProfile(httpProfile=http)
    )


def call(method, request_type, **params):
    """Calls an SDK method; returns the response as a dict, or the error."""
    req = request_type()
    req.from_json_string(json.dumps(params))
    try:
        return json.loads(method(req).to_json_string())
    except TencentCloudSDKException as e:
        return {"error": {"code": e.get_code(), "message": e.get_message(), "requestId": e.get_request_id()}}


class Driver:
    def __init__(self, args):
        self.args = args
        self.scf = client(args.endpoint, args.secret_id, args.secret_key)

    def invoke(self, **params):
        return call(self.scf.Invoke, models.InvokeRequest, **params)

    def status(self, request_id):
        return call(self.scf.GetAsyncEventStatus, models.GetAsyncEventStatusRequest, InvokeRequestId=request_id)

    def list(self, **params):
        return call(self.scf.ListAsyncEvents, models.ListAsyncEventsRequest, **params)

    def terminate(self, **params):
        return call(self.scf.TerminateAsyncEvent, models.TerminateAsyncEventRequest, **params)

    def submit(self, function, context):
        r = self.invoke(FunctionName=function, InvocationType="Event", ClientContext=json.dumps(context))
        assert "error" not in r, r
        return r["Result"]["FunctionRequestId"]

    def wait_ended(self, request_id):
        deadline = time.monotonic() + WAIT_SECS
        while time.monotonic() < deadline:
            r = self.status(request_id)
            if "error" in r or r["Result"]["Status"] != "RUNNING":
                return r
            time.sleep(0.05)
        raise SystemExit(f"event {request_id} still RUNNING after {WAIT_SECS} s")

    def admin_status(self, request_id):
        req = urllib.request.Request(
            f"http://{self.args.endpoint}/admin/async-events/{request_id}",
            headers={"x-functions-key": self.args.admin_key},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["status"]

    def wait_running(self, request_id):
        deadline = time.monotonic() + WAIT_SECS
        while time.monotonic() < deadline:
            if self.admin_status(request_id) == "RUNNING":
                return
            time.sleep(0.05)
        raise SystemExit(f"event {request_id} did not start within {WAIT_SECS} s")

    def run(self):
        out = {}
        # Asynchronous invocation, then its status.
        logged = self.submit("log", {"from": "scf"})
        out["event_id"] = logged
        out["event_final"] = self.wait_ended(logged)

        # Synchronous invocations: success, JSON echo, function failure, log tail.
        out["sync_echo"] = self.invoke(FunctionName="echo", ClientContext=json.dumps({"hello": "scf"}))
        out["sync_default_type"] = self.invoke(
            FunctionName="log", InvocationType="RequestResponse", Namespace="default", Qualifier="$LATEST"
        )
        out["sync_fail"] = self.invoke(FunctionName="fail", ClientContext='"boom"')
        out["sync_no_log"] = self.invoke(FunctionName="log", LogType="None")

        # Forced termination of a long sleep, then graceful of another.
        forced = self.submit("sleep", {"ms": 60000})
        self.wait_running(forced)
        out["forced_terminate"] = self.terminate(FunctionName="sleep", InvokeRequestId=forced)
        out["forced_final"] = self.wait_ended(forced)
        graceful = self.submit("sleep", {"ms": 60000})
        self.wait_running(graceful)
        out["running_status"] = self.status(graceful)
        out["list_running"] = self.list(FunctionName="sleep", Status=["RUNNING"])
        out["graceful_terminate"] = self.terminate(FunctionName="sleep", InvokeRequestId=graceful, GraceShutdown=True)
        out["graceful_final"] = self.wait_ended(graceful)
        out["sleep_ids"] = [forced, graceful]
        out["terminate_again"] = self.terminate(FunctionName="sleep", InvokeRequestId=forced)
        out["terminate_unknown"] = self.terminate(FunctionName="sleep", InvokeRequestId="no-such-event")
        out["terminate_other_function"] = self.terminate(FunctionName="log", InvokeRequestId=forced)
        out["status_unknown"] = self.status("no-such-event")

        # Listing: filters, order, page, bad parameters.
        out["list_sleep"] = self.list(FunctionName="sleep", Order="ASC")
        out["list_sleep_by_end_desc"] = self.list(FunctionName="sleep", Orderby="EndTime", Order="DESC", Limit=1)
        out["list_log_finished"] = self.list(FunctionName="log", Status=["FINISHED"], InvokeType=["scf"])
        out["list_log_running"] = self.list(FunctionName="log", Status=["RUNNING"])
        out["list_by_id"] = self.list(FunctionName="sleep", InvokeRequestId=graceful)
        out["list_page"] = self.list(FunctionName="sleep", Offset=1, Limit=1, Order="ASC")
        out["list_future"] = self.list(
            FunctionName="sleep", StartTimeInterval={"Start": "2100-01-01 00:00:00", "End": "2100-01-02 00:00:00"}
        )
        out["list_past_end"] = self.list(
            FunctionName="sleep", EndTimeInterval={"Start": "2000-01-01 00:00:00", "End": "2000-01-02 00:00:00"}
        )
        out["list_bad_limit"] = self.list(FunctionName="sleep", Limit=101)
        out["list_bad_status"] = self.list(FunctionName="sleep", Status=["QUEUED"])
        out["list_bad_time"] = self.list(FunctionName="sleep", StartTimeInterval={"Start": "yesterday"})
        out["list_bad_order"] = self.list(FunctionName="sleep", Order="UP")
        out["list_no_function"] = self.list()

        # Errors: unknown function, namespace, qualifier, type, context, action, credentials.
        out["invoke_unknown_function"] = self.invoke(FunctionName="nope")
        out["invoke_other_namespace"] = self.invoke(FunctionName="echo", Namespace="prod")
        out["invoke_other_qualifier"] = self.invoke(FunctionName="echo", Qualifier="2")
        out["invoke_bad_type"] = self.invoke(FunctionName="echo", InvocationType="DryRun")
        out["invoke_bad_context"] = self.invoke(FunctionName="echo", ClientContext="{not json")
        try:
            self.scf.call_json("DeleteFunction", {"FunctionName": "echo"})
            out["unknown_action"] = "no error"
        except TencentCloudSDKException as e:
            out["unknown_action"] = {"error": {"code": e.get_code(), "message": e.get_message()}}
        wrong_key = client(self.args.endpoint, self.args.secret_id, self.args.secret_key + "x")
        out["wrong_secret_key"] = call(wrong_key.Invoke, models.InvokeRequest, FunctionName="echo")
        wrong_id = client(self.args.endpoint, "AKIDnobody", self.args.secret_key)
        out["wrong_secret_id"] = call(wrong_id.Invoke, models.InvokeRequest, FunctionName="echo")
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--secret-id", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--admin-key", required=True)
    json.dump(Driver(p.parse_args()).run(), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
