-- Per pair of versions of a model: videos both judged, how many verdicts agree, mean and max score change.
-- :a  the first version (default: every version; without a and b, each pair appears once, a < b)
-- :b  the second version (default: every version)
SELECT model_name, version_a, version_b,
       count(*) AS videos,
       count_if(agree) AS agree,
       count_if(NOT agree) AS disagree,
       avg(abs(score_diff)) AS mean_abs_score_diff,
       max(abs(score_diff)) AS max_abs_score_diff
FROM model_comparison
WHERE version_a = coalesce(CAST(:a AS INT), version_a)
  AND version_b = coalesce(CAST(:b AS INT), version_b)
  AND (version_a < version_b OR (:a IS NOT NULL AND :b IS NOT NULL))
GROUP BY model_name, version_a, version_b
ORDER BY model_name, version_a, version_b
