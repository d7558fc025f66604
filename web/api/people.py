"""Routes: a person as staff see them (one record per person: their cases, households, 名寄せ candidates)."""
from __future__ import annotations

from flask.views import MethodView

from engine.people import reading
from schemas.common import MAX_ID
from schemas.people import PersonRecordOut
from web import db
from web.api.core import ApiBlueprint, caller, problems, requires

blp = ApiBlueprint("People", __name__, description="本人の記録（名寄せ）: ケース、世帯、名寄せの候補")


@blp.route(f"/people/<int(max={MAX_ID}):person_id>")
class PersonById(MethodView):
    @requires("cases:read")
    @blp.response(200, PersonRecordOut, description="本人の記録（見てよい範囲）")
    @problems(404, 500, 503)
    def get(self, person_id):
        """本人の記録を職員の見え方で読む（トークンの職員の権限の範囲）

        本人のケースのどれかの内容を読める職員には、詳細（性別・宛名番号）、世帯、名寄せの候補まで。FM と管理者には
        氏名・ふりがな・生年月日・圏域と、ケースがあること。ほかの職員には 404（範囲外のケースと同じ）。
        ケースは見てよいものだけ番号と状態、ほかはあることと担当部署だけ。統合された記録のIDには統合先の記録が
        答え、`merged_into` がそれを示します。読んだことは監査ログに残ります（person.read）。
        """
        return reading.api_view(reading.read_person(db.session(), caller().user, person_id, face="api"))
