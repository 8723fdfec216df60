-- Videos whose latest verdict is suspicious or manipulated, highest score first, with their Content Credentials.
-- :date  only verdicts of this scan date (YYYY-MM-DD); default: every date
SELECT uri, verdict, score, provenance_status, declared_ai, model_name, model_version, scan_date, video_id
FROM latest_verdicts
WHERE verdict IN ('suspicious', 'manipulated')
  AND (:date IS NULL OR scan_date = CAST(:date AS DATE))
ORDER BY score DESC, uri
