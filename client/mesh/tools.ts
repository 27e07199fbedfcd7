/** What a test page needs to play a peer of the mesh, honest or hostile: PeerJS and the codec. */
import { Peer } from 'peerjs';
import { MeshKind, encodeMesh } from '../../shared/mesh.ts';
import { MsgType, decodeFrame, encodeFrame } from '../../shared/protocol.ts';

export const meshTools = { Peer, MeshKind, encodeMesh, MsgType, decodeFrame, encodeFrame };
