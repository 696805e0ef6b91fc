#!/usr/bin/env python3
"""The H.323 messages of the helper's unit tests (helpers/src/h323/tests/messages.rs),
encoded by pycrate from the values below: `name<TAB>hex` lines. Reuses the encoder (and its
fix) of h323_pycrate.py."""
import ipaddress
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h323_pycrate import MSC, OLC, RAS, UUIE, checked  # noqa: E402

P=(0,0,8,2250,0,7)
def ta4(ip, port): return ('ipAddress', {'ip': bytes(map(int, ip.split('.'))), 'port': port})
def ta6(ip, port): return ('ip6Address', {'ip': ipaddress.ip_address(ip).packed, 'port': port})
def h4(ip, port): return ('unicastAddress', ('iPAddress', {'network': bytes(map(int, ip.split('.'))), 'tsapIdentifier': port}))
def h6(ip, port): return ('unicastAddress', ('iP6Address', {'network': ipaddress.ip_address(ip).packed, 'tsapIdentifier': port}))
NSP={'nonStandardIdentifier':('h221NonStandard',{'t35CountryCode':9,'t35Extension':0,'manufacturerCode':61}),'data':b'vendor'}
EP={'vendor':{'vendor':{'t35CountryCode':9,'t35Extension':0,'manufacturerCode':61},'productId':b'tunfilter','versionId':b'1'},'terminal':{},'mc':False,'undefinedNode':False}
out={}
def ras(name, v): out[name]=checked(RAS,(name,v)).hex()
ras('gatekeeperRequest', {'requestSeqNum':1,'protocolIdentifier':P,'nonStandardData':NSP,'rasAddress':ta4('192.0.2.10',5000),'endpointType':EP,'endpointAlias':[('h323-ID','alice')]})
ras('gatekeeperConfirm', {'requestSeqNum':1,'protocolIdentifier':P,'gatekeeperIdentifier':'gk','rasAddress':ta4('198.51.100.5',1719)})
ras('registrationRequest', {'requestSeqNum':2,'protocolIdentifier':P,'discoveryComplete':True,'callSignalAddress':[ta4('192.0.2.10',1720), ta6('2001:db8::10',1720)],'rasAddress':[ta4('192.0.2.10',5000)],'terminalType':EP,'terminalAlias':[('dialledDigits','1234')],'endpointVendor':EP['vendor'],'timeToLive':300,'keepAlive':False,'willSupplyUUIEs':False,'maintainConnection':False})
ras('registrationConfirm', {'requestSeqNum':2,'protocolIdentifier':P,'callSignalAddress':[ta4('198.51.100.5',1720)],'gatekeeperIdentifier':'gk','endpointIdentifier':'ep1','willRespondToIRR':False,'maintainConnection':False})
ras('admissionRequest', {'requestSeqNum':3,'callType':('pointToPoint',0),'callModel':('direct',0),'endpointIdentifier':'ep1','destinationInfo':[('dialledDigits','5678')],'destCallSignalAddress':ta4('203.0.113.7',1720),'srcInfo':[('h323-ID','alice')],'srcCallSignalAddress':ta4('192.0.2.10',1720),'bandWidth':640,'callReferenceValue':7,'conferenceID':b'\x11'*16,'activeMC':False,'answerCall':False})
ras('admissionConfirm', {'requestSeqNum':3,'bandWidth':640,'callModel':('direct',0),'destCallSignalAddress':ta4('203.0.113.7',1720),'irrFrequency':30})
ras('locationRequest', {'requestSeqNum':4,'endpointIdentifier':'ep1','destinationInfo':[('dialledDigits','5678')],'replyAddress':ta4('192.0.2.10',5000)})
ras('locationConfirm', {'requestSeqNum':4,'callSignalAddress':ta6('2001:db8:7::7',1720),'rasAddress':ta6('2001:db8:7::7',1719),'nonStandardData':NSP})
def olc(media_ctrl, t120=None, reverse=None):
    h2250={'sessionID':1,'mediaControlChannel':media_ctrl,'silenceSuppression':False}
    v={'forwardLogicalChannelNumber':101,'forwardLogicalChannelParameters':{'dataType':('audioData',('g711Alaw64k',20)),'multiplexParameters':('h2250LogicalChannelParameters',h2250)}}
    if reverse: v['reverseLogicalChannelParameters']={'dataType':('audioData',('g7231',{'maxAl-sduAudioFrames':1,'silenceSuppression':True})),'multiplexParameters':('h2250LogicalChannelParameters',{'sessionID':1,'mediaChannel':reverse[0],'mediaControlChannel':reverse[1]})}
    if t120: v['separateStack']={'networkAddress':('localAreaAddress',t120),'associateConference':False}
    return v
out['olc_fast']=checked(OLC, olc(h4('192.0.2.10',5001), reverse=(h4('192.0.2.10',5000),h4('192.0.2.10',5001)))).hex()
ack={'forwardLogicalChannelNumber':101,'forwardMultiplexAckParameters':('h2250LogicalChannelAckParameters',{'sessionID':1,'mediaChannel':h4('203.0.113.7',7000),'mediaControlChannel':h4('203.0.113.7',7001)})}
out['msc_olc_t120_v6']=checked(MSC, ('request',('openLogicalChannel', olc(h6('2001:db8::10',5003), t120=h6('2001:db8::10',1503))))).hex()
out['msc_ack']=checked(MSC, ('response',('openLogicalChannelAck', ack))).hex()
out['msc_ack_multicast']=checked(MSC, ('response',('openLogicalChannelAck', {'forwardLogicalChannelNumber':5,'forwardMultiplexAckParameters':('h2250LogicalChannelAckParameters',{'mediaChannel':('multicastAddress',('iPAddress',{'network':bytes([233,252,0,1]),'tsapIdentifier':6000}))})}))).hex()
out['msc_tcs']=checked(MSC, ('request',('masterSlaveDetermination',{'terminalType':50,'statusDeterminationNumber':12345}))).hex()
fast=bytes.fromhex(out['olc_fast'])
def uu(body, pdu_extra={}):
    pdu={'h323-message-body':body,'h245Tunnelling':False}
    pdu.update(pdu_extra)
    return checked(UUIE, {'h323-uu-pdu':pdu}).hex()
CID={'guid':b'\x22'*16}
out['setup']=uu(('setup',{'protocolIdentifier':P,'h245Address':ta4('192.0.2.10',1300),'sourceAddress':[('h323-ID','alice')],'sourceInfo':EP,'destCallSignalAddress':ta4('203.0.113.7',1720),'activeMC':False,'conferenceID':b'\x33'*16,'conferenceGoal':('create',0),'callType':('pointToPoint',0),'sourceCallSignalAddress':ta4('192.0.2.10',40000),'callIdentifier':CID,'fastStart':[fast],'mediaWaitForConnect':False,'canOverlapSend':False,'multipleCalls':False,'maintainConnection':False}))
out['callProceeding']=uu(('callProceeding',{'protocolIdentifier':P,'destinationInfo':EP,'h245Address':ta4('203.0.113.7',1301),'callIdentifier':CID,'multipleCalls':False,'maintainConnection':False}))
out['alerting_v6']=uu(('alerting',{'protocolIdentifier':P,'destinationInfo':EP,'h245Address':ta6('2001:db8:7::7',1302),'callIdentifier':CID,'multipleCalls':False,'maintainConnection':False}))
out['connect']=uu(('connect',{'protocolIdentifier':P,'h245Address':ta4('203.0.113.7',1303),'destinationInfo':EP,'conferenceID':b'\x33'*16,'callIdentifier':CID,'fastStart':[fast],'multipleCalls':False,'maintainConnection':False}))
out['facility']=uu(('facility',{'protocolIdentifier':P,'alternativeAddress':ta4('203.0.113.99',1720),'reason':('callForwarded',0),'callIdentifier':CID,'h245Address':ta4('203.0.113.7',1304),'multipleCalls':False,'maintainConnection':False}))
out['progress']=uu(('progress',{'protocolIdentifier':P,'destinationInfo':EP,'h245Address':ta4('203.0.113.7',1305),'callIdentifier':CID,'tokens':[{'tokenOID':P,'timeStamp':5,'dhkey':{'halfkey':(5,3),'modSize':(0,0),'generator':(1,1)},'random':123456789}],'cryptoTokens':[('cryptoEPPwdHash',{'alias':('h323-ID','alice'),'timeStamp':5,'token':{'algorithmOID':P,'paramS':{'ranInt':7},'hash':(255,8)}})],'fastStart':[fast]}))
out['information_tunnel']=uu(('information',{'protocolIdentifier':P,'callIdentifier':CID}), {'h245Tunnelling':True,'h245Control':[bytes.fromhex(out['msc_tcs']), bytes.fromhex(out['msc_ack'])]})
out['releaseComplete']=uu(('releaseComplete',{'protocolIdentifier':P,'reason':('undefinedReason',0)}))
for k,v in out.items(): print(f'{k}\t{v}')

# tests/tests/sim_h323.rs: a Setup from 10.1.3.143:40000 to 10.1.6.18:1720 with fastStart,
# as a whole TPKT / Q.931 SETUP frame.
sim_olc = checked(OLC, olc(h4('10.1.3.143', 5001), reverse=(h4('10.1.3.143', 5000), h4('10.1.3.143', 5001))))
sim = bytes.fromhex(uu(('setup', {'protocolIdentifier': P, 'h245Address': ta4('10.1.3.143', 1300), 'sourceInfo': EP, 'destCallSignalAddress': ta4('10.1.6.18', 1720), 'activeMC': False, 'conferenceID': b'\x33' * 16, 'conferenceGoal': ('create', 0), 'callType': ('pointToPoint', 0), 'sourceCallSignalAddress': ta4('10.1.3.143', 40000), 'callIdentifier': CID, 'fastStart': [sim_olc], 'mediaWaitForConnect': False, 'canOverlapSend': False, 'multipleCalls': False, 'maintainConnection': False})))
q931 = bytes([0x08, 0x02, 0x12, 0x34, 0x05, 0x04, 0x03, 0x80, 0x90, 0xa5, 0x7e, (len(sim) + 1) >> 8, (len(sim) + 1) & 0xff, 0x05]) + sim
frame = bytes([3, 0, (len(q931) + 4) >> 8, (len(q931) + 4) & 0xff]) + q931
print(f'sim_setup_frame\t{frame.hex()}')

# The same over IPv6: from 2001:db8:1::2:40000 to 2001:db8:9::10:1720.
sim6_olc = checked(OLC, olc(h6('2001:db8:1::2', 5001), reverse=(h6('2001:db8:1::2', 5000), h6('2001:db8:1::2', 5001))))
sim6 = bytes.fromhex(uu(('setup', {'protocolIdentifier': P, 'h245Address': ta6('2001:db8:1::2', 1300), 'sourceInfo': EP, 'destCallSignalAddress': ta6('2001:db8:9::10', 1720), 'activeMC': False, 'conferenceID': b'\x33' * 16, 'conferenceGoal': ('create', 0), 'callType': ('pointToPoint', 0), 'sourceCallSignalAddress': ta6('2001:db8:1::2', 40000), 'callIdentifier': CID, 'fastStart': [sim6_olc], 'mediaWaitForConnect': False, 'canOverlapSend': False, 'multipleCalls': False, 'maintainConnection': False})))
q931 = bytes([0x08, 0x02, 0x12, 0x34, 0x05, 0x04, 0x03, 0x80, 0x90, 0xa5, 0x7e, (len(sim6) + 1) >> 8, (len(sim6) + 1) & 0xff, 0x05]) + sim6
frame = bytes([3, 0, (len(q931) + 4) >> 8, (len(q931) + 4) & 0xff]) + q931
print(f'sim_setup_frame_v6\t{frame.hex()}')
