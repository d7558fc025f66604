"""Routes: liveness and readiness under /api/v1 (no token needed)."""
from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from web import health
from web.api.core import ApiBlueprint, problems
from web.api.problems import problem_response

blp = ApiBlueprint("Health", __name__, description="死活監視（トークン不要）")


class HealthOut(Schema):
    status = fields.String(required=True, metadata={"description": "ok | unavailable"})
    database = fields.String(metadata={"description": "ok | unreachable"})
    schema = fields.String(metadata={"description": "head | outdated（スキーマが最新の版か）"})
    detail = fields.String()


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, HealthOut, description="応答している")
    def get(self):
        """生きているか（プロセスが応答するか）"""
        return health.liveness()[0]


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, HealthOut, description="受付可能")
    @problems(503)
    def get(self):
        """受付可能か（データベースに接続でき、スキーマが最新の版か）。そうでなければ 503 の problem"""
        body, status = health.readiness()
        if status != 200:
            why = {"read_only": "データベースが読み取り専用です（待機系に切り替わっていないか確認してください）。",
                   "ok": "データベースのスキーマが最新の版ではありません（tsunagu db upgrade）。"}.get(
                body.get("database"), "データベースに接続できません。")
            # The readiness body's own "detail" (the error's class name) would collide with the problem's.
            extra = {("cause" if k == "detail" else k): v for k, v in body.items() if k != "status"}
            return problem_response("service-unavailable", why, headers={"Retry-After": "30"}, **extra)
        return body
