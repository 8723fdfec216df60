-- Videos that carry Content Credentials (C2PA), with who signed them, what they declare and the latest verdict beside them.
-- :status  only this credentials status (valid, invalid, untrusted); default: every video with a manifest store
SELECT v.uri, p.status, p.declared_ai, p.digital_source_types, p.claim_generator, p.signer_subject, p.signed_at,
       p.validation_failures, p.reason, l.verdict, l.score, l.model_version, p.video_id
FROM provenance p
JOIN videos v USING (video_id)
LEFT JOIN latest_verdicts l USING (video_id)
WHERE :status IS NULL OR p.status = :status
ORDER BY p.status, v.uri
